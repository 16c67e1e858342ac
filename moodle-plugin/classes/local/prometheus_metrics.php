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

namespace local_eventrelay\local;

/**
 * The outbox's state as Prometheus metrics (text format), for node_exporter's textfile collector: what the
 * outbox-age and spool checks report, where the relay's alert rules can see it.
 *
 * Names are a contract (deploy/prometheus/alerts.yml uses them); every series has the label site.
 *
 * @package    local_eventrelay
 * @copyright  2026 Moodle Event Relay contributors
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */
class prometheus_metrics {
    /**
     * Reads the outbox and the spool and renders the metrics.
     *
     * @param int $now The time of the reading (Unix time).
     * @return string Prometheus text exposition format, ending with a newline.
     */
    public static function render(int $now): string {
        global $DB;
        $oldest = $DB->get_field_sql('SELECT MIN(timecreated) FROM {local_eventrelay_outbox}');
        $pending = spool_store::instance()->pending();
        $values = [
            'moodle_eventrelay_outbox_oldest_age_seconds' => ['gauge', 'Age of the oldest unpublished outbox row (0 when empty).',
                $oldest === null || $oldest === false ? 0 : max(0, $now - (int) $oldest)],
            'moodle_eventrelay_outbox_pending_rows' => ['gauge', 'Outbox rows waiting to be published.',
                $DB->count_records('local_eventrelay_outbox')],
            'moodle_eventrelay_spooled_rows' => ['gauge', 'Events the outbox insert did not take, not published yet.',
                $pending['spool'] + $pending['outbox']],
            'moodle_eventrelay_spool_unreadable_files' => ['gauge', 'Spool files that could not be read back.',
                $pending['bad']],
            'moodle_eventrelay_metrics_timestamp_seconds' => ['gauge', 'When these metrics were read (Unix time).', $now],
        ];
        $site = addcslashes(config::load()->site_id(), "\\\"\n");
        $text = '';
        foreach ($values as $name => [$type, $help, $value]) {
            $text .= "# HELP {$name} {$help}\n# TYPE {$name} {$type}\n{$name}{site=\"{$site}\"} " . (int) $value . "\n";
        }
        return $text;
    }
}
