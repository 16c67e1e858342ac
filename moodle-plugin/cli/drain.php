<?php
// This file is part of Moodle - https://moodle.org/
//
// Moodle is free software: you can redistribute it and/or modify
// it under the terms of the GNU General Public License as published by
// the Free Software Foundation, either version 3 of the License, or
// (at your option) any later version.
//
// Moodle is distributed in the hope that it will be useful,
// but WITHOUT ANY WARRANTY; without even the implied warranty of
// MERCHANTABILITY or FITNESS FOR A PARTICULAR PURPOSE.  See the
// GNU General Public License for more details.
//
// You should have received a copy of the GNU General Public License
// along with Moodle.  If not, see <https://www.gnu.org/licenses/>.

/**
 * Drains the outbox now: publishes every waiting event and prints what happened.
 *
 * Usage: php local/eventrelay/cli/drain.php [--wait=SECONDS]
 * Exit status: 0 all published, 1 events kept after an error, 2 another drain is running or not configured.
 *
 * @package    local_eventrelay
 * @copyright  2026 Moodle Event Relay contributors
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */

define('CLI_SCRIPT', true);

require(__DIR__ . '/../../../config.php');
require_once($CFG->libdir . '/clilib.php');

[$options, $unrecognised] = cli_get_params(['help' => false, 'wait' => 5], ['h' => 'help']);
if ($unrecognised) {
    cli_error(get_string('cliunknowoption', 'admin', implode(PHP_EOL . '  ', $unrecognised)));
}
if ($options['help']) {
    echo "Publishes every event waiting in the local_eventrelay outbox, in sequence order.

Options:
  --wait=SECONDS  How long to wait for a drain that is already running (default 5).
  -h, --help      Print this help.

Exit status: 0 all published, 1 events kept after an error, 2 not configured or another drain is running.
";
    exit(0);
}

try {
    $result = \local_eventrelay\local\outbox_drain::run((int) $options['wait'], 0.0, function (string $line): void {
        cli_writeln($line);
    });
} catch (\local_eventrelay\local\publish_exception $e) {
    cli_problem($e->getMessage());
    exit(2);
}
if ($result === null) {
    cli_problem('Another drain is running; try again later.');
    exit(2);
}
cli_writeln($result->summary());
exit($result->failed > 0 ? 1 : 0);
