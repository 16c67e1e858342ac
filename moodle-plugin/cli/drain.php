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
 * Drains the outbox: once (publishes every waiting event and prints what happened), or continuously with
 * --follow (sub-second delivery without cron; see classes/local/follower.php and deploy/systemd/).
 *
 * Usage: php local/eventrelay/cli/drain.php [--wait=SECONDS] | --follow [--idle-max=SECONDS] [--max-seconds=N]
 * Exit status: 0 all published (or the follower stopped), 1 events kept after an error,
 * 2 another drain or follower is running, not configured, or bad options.
 *
 * @package    local_eventrelay
 * @copyright  2026 Moodle Event Relay contributors
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */

define('CLI_SCRIPT', true);

require(__DIR__ . '/../../../config.php');
require_once($CFG->libdir . '/clilib.php');

use local_eventrelay\core\publish_exception;
use local_eventrelay\local\config;
use local_eventrelay\local\follower;
use local_eventrelay\local\outbox_drain;

[$options, $unrecognised] = cli_get_params(
    [
        'help' => false,
        'wait' => 5,
        'follow' => false,
        'idle-max' => follower::DEFAULT_IDLE_MAX,
        'max-seconds' => 0,
        'verbose' => false,
    ],
    ['h' => 'help', 'f' => 'follow', 'v' => 'verbose']
);
if ($unrecognised) {
    cli_error(get_string('cliunknowoption', 'admin', implode(PHP_EOL . '  ', $unrecognised)), 2);
}
if ($options['help']) {
    echo "Publishes the events waiting in the local_eventrelay outbox (and its spool), in sequence order.

Options:
  --wait=SECONDS         Once: how long to wait for a drain that is already running (default 5).
  -f, --follow           Keep going: poll the outbox and publish new events within a fraction of a second.
                         One follower per site (Moodle lock); while it runs, requests queue no drain task.
                         SIGTERM or SIGINT stop it after the batch under way.
  --idle-max=SECONDS     With --follow: longest wait between polls when idle (default 0.5, 0.05 to 60).
  --max-seconds=N        With --follow: stop after N seconds (0, the default: never).
  -v, --verbose          With --follow: print every batch, not only failures and spool moves.
  -h, --help             Print this help.

Exit status: 0 all published (or the follower stopped), 1 events kept after an error,
2 another drain or follower is running, the broker is not configured, or bad options.
";
    exit(0);
}

foreach (['wait', 'idle-max', 'max-seconds'] as $name) {
    if (!is_numeric($options[$name]) || $options[$name] < 0) {
        cli_error("--{$name} must be a number of seconds, 0 or more; got '{$options[$name]}'", 2);
    }
}

$print = function (string $line): void {
    cli_writeln(date('Y-m-d H:i:s ') . $line);
};

try {
    if ($options['follow']) {
        $follower = new follower(config::load(), (float) $options['idle-max'], $print, (bool) $options['verbose']);
        $result = $follower->run((float) $options['max-seconds']);
        if ($result === null) {
            cli_problem('Another follower is running for this site; this one stops.');
            exit(2);
        }
        cli_writeln('Follower stopped: ' . $result->summary());
        exit(0);
    }
    $result = outbox_drain::run((int) $options['wait'], 0.0, $print);
} catch (publish_exception $e) {
    cli_problem($e->getMessage());
    exit(2);
}
if ($result === null) {
    cli_problem('Another drain is running; try again later.');
    exit(2);
}
cli_writeln($result->summary());
exit($result->failed > 0 ? 1 : 0);
