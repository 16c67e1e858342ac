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
 * Prints the outbox's state as Prometheus metrics, or writes them for node_exporter's textfile collector.
 *
 * @package    local_eventrelay
 * @copyright  2026 Moodle Event Relay contributors
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */

define('CLI_SCRIPT', true);

require(__DIR__ . '/../../../config.php');
require_once($CFG->libdir . '/clilib.php');

use local_eventrelay\local\prometheus_metrics;

[$options, $unrecognised] = cli_get_params(['help' => false, 'output' => ''], ['h' => 'help']);
if ($unrecognised) {
    cli_error(get_string('cliunknowoption', 'admin', implode(PHP_EOL . '  ', $unrecognised)));
}
if ($options['help']) {
    echo "Prints the outbox's state as Prometheus metrics (moodle_eventrelay_outbox_oldest_age_seconds,
moodle_eventrelay_outbox_pending_rows, moodle_eventrelay_spooled_rows, moodle_eventrelay_spool_unreadable_files,
moodle_eventrelay_metrics_timestamp_seconds), labelled with the plugin's site id.

Options:
  --output=FILE   Write them to FILE (replaced whole, e.g. in node_exporter's --collector.textfile.directory,
                  named *.prom) instead of standard output.
  -h, --help      Print this help.

Run it every minute (deploy/systemd/moodle-eventrelay-metrics.timer, or cron); the alert rules in
deploy/prometheus/alerts.yml page when the outbox is old and when these metrics go stale.
";
    exit(0);
}

$text = prometheus_metrics::render(time());
if ($options['output'] === '') {
    echo $text;
    exit(0);
}
// Replaced whole: node_exporter never reads half a file.
$temp = $options['output'] . '.' . getmypid() . '.tmp';
if (file_put_contents($temp, $text) === false || !rename($temp, $options['output'])) {
    @unlink($temp);
    cli_error("Could not write {$options['output']}");
}
exit(0);
