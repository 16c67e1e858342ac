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
 * Backfill: publishes the current state of users, enrolments and course completions as events with
 * data.backfill = true (through the outbox, in sequence order), in batches, resumable.
 *
 * @package    local_eventrelay
 * @copyright  2026 Moodle Event Relay contributors
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */

define('CLI_SCRIPT', true);

require(__DIR__ . '/../../../config.php');
require_once($CFG->libdir . '/clilib.php');

use local_eventrelay\local\backfill;
use local_eventrelay\local\config;

[$options, $unrecognised] = cli_get_params([
    'help' => false,
    'sources' => 'users,enrolments,completions',
    'userids' => '',
    'courseids' => '',
    'since' => 0,
    'batch' => 500,
    'restart' => false,
    'no-drain' => false,
], ['h' => 'help']);
if ($unrecognised) {
    cli_error(get_string('cliunknowoption', 'admin', implode(PHP_EOL . '  ', $unrecognised)));
}
if ($options['help']) {
    echo "Publishes the current state of users, enrolments and course completions as events of the usual types
(moodle.user.created, moodle.enrolment.created, moodle.completion.course_completed) with data.backfill = true.

Events go through the outbox, so they get their sequence and are published with confirms like any other.
Each batch is written with its cursor in one transaction: run the same command again to resume.

Options:
  --sources=LIST     Comma-separated: users, enrolments, completions (default all three).
  --userids=LIST     Only these user ids.
  --courseids=LIST   Only these course ids (enrolments and completions).
  --since=TIME       Only rows changed (completions: completed) at or after this Unix time.
  --batch=N          Rows per batch (default 500).
  --restart          Forget the saved position for these filters and start from the first row.
  --no-drain         Only fill the outbox; the drain task publishes it later.
  -h, --help         Print this help.

Example: php local/eventrelay/cli/backfill.php --sources=enrolments --courseids=7,9
";
    exit(0);
}

$config = config::load();
if (!$config->is_recording()) {
    cli_error('Set the site id first (local_eventrelay/siteid): no event can be built without it.');
}
$sources = config::parse_list($options['sources']);
foreach ($sources as $source) {
    if (!isset(backfill::SOURCES[$source])) {
        cli_error("Unknown source '{$source}': use users, enrolments or completions.");
    }
}
$ids = function (string $list): array {
    return array_map('intval', config::parse_list($list));
};
$backfill = new backfill($config, $ids($options['userids']), $ids($options['courseids']), (int) $options['since']);
$batch = max(1, (int) $options['batch']);
$drain = !$options['no-drain'] && $config->has_broker();

foreach ($sources as $source) {
    if (!$config->relays(backfill::SOURCES[$source])) {
        cli_writeln("{$source}: skipped, " . backfill::SOURCES[$source] . ' is not in the relayed events setting.');
        continue;
    }
    if ($options['restart']) {
        $backfill->reset($source);
    }
    $total = 0;
    while (($written = $backfill->next_batch($source, $batch)) > 0) {
        $total += $written;
        cli_writeln("{$source}: {$total} events written to the outbox");
        if ($drain) {
            $result = \local_eventrelay\local\outbox_drain::run(60);
            if ($result !== null && $result->failed > 0) {
                cli_problem('Publishing stopped: ' . $result->summary());
                cli_problem('The events stay in the outbox; run this command again to resume.');
                exit(1);
            }
        }
    }
    cli_writeln("{$source}: done, {$total} events.");
}
if (!$drain) {
    \core\task\manager::queue_adhoc_task(new \local_eventrelay\task\drain_outbox(), true);
    cli_writeln('The drain task will publish the outbox (or run local/eventrelay/cli/drain.php).');
}
exit(0);
