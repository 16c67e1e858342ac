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

namespace local_eventrelay;

use local_eventrelay\local\prometheus_metrics;
use local_eventrelay\tests\moodle_relay_helper as helper;

/**
 * The outbox's metrics for Prometheus: what the alert rules read, with the site's label.
 *
 * @package    local_eventrelay
 * @copyright  2026 Moodle Event Relay contributors
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 * @covers     \local_eventrelay\local\prometheus_metrics
 */
#[\PHPUnit\Framework\Attributes\CoversClass(\local_eventrelay\local\prometheus_metrics::class)]
final class prometheus_metrics_test extends \advanced_testcase {
    /**
     * Returns the value of one series of the rendered text.
     *
     * @param string $text The metrics.
     * @param string $name The metric, without its prefix.
     * @return int|null The value, or null when the series is missing.
     */
    private static function value(string $text, string $name): ?int {
        $series = 'moodle_eventrelay_' . $name . '{site="' . helper::SITE_ID . '"} ';
        foreach (explode("\n", $text) as $line) {
            if (str_starts_with($line, $series)) {
                return (int) substr($line, strlen($series));
            }
        }
        return null;
    }

    /**
     * An empty outbox reads as age 0; rows waiting give their count and the age of the oldest.
     *
     * @return void
     */
    public function test_age_and_counts_of_what_waits(): void {
        $this->resetAfterTest();
        helper::configure();
        $now = time();
        $text = prometheus_metrics::render($now);
        $this->assertSame(0, self::value($text, 'outbox_oldest_age_seconds'));
        $this->assertSame(0, self::value($text, 'outbox_pending_rows'));
        $this->assertSame(0, self::value($text, 'spooled_rows'));
        $this->assertSame(0, self::value($text, 'spool_unreadable_files'));
        $this->assertSame($now, self::value($text, 'metrics_timestamp_seconds'));
        $this->assertStringContainsString("# TYPE moodle_eventrelay_outbox_pending_rows gauge\n", $text);

        $this->getDataGenerator()->create_user();
        $this->getDataGenerator()->create_user();
        $rows = count(helper::rows());
        $this->assertGreaterThan(0, $rows);
        $text = prometheus_metrics::render($now + 90);
        $this->assertSame($rows, self::value($text, 'outbox_pending_rows'));
        $this->assertEqualsWithDelta(90, self::value($text, 'outbox_oldest_age_seconds'), 5);
    }
}
