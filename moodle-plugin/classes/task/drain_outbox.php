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

namespace local_eventrelay\task;

use local_eventrelay\local\drain_signal;
use local_eventrelay\local\outbox_drain;

/**
 * Drains the outbox now: queued (deduplicated) when rows reach the outbox and no drain is under way or queued
 * ({@see \local_eventrelay\local\drain_signal}). Does nothing while the follower runs.
 *
 * When another drain holds the lock this one ends at once: the running drain reads up to the newest row,
 * and the scheduled fallback picks up anything left.
 *
 * @package    local_eventrelay
 * @copyright  2026 Moodle Event Relay contributors
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */
class drain_outbox extends \core\task\adhoc_task {
    /** @var int Seconds after which a drain starts no new batch, so a task run stays short. */
    public const MAX_RUN_SECONDS = 240;

    /**
     * Returns the task's name.
     *
     * @return string The name.
     */
    public function get_name(): string {
        return get_string('taskdrain', 'local_eventrelay');
    }

    /**
     * Drains the outbox.
     *
     * A broker failure is recorded on the rows and does not fail the task: the rows stay, and the
     * scheduled fallback retries every minute (failing the task would only add Moodle's own back-off).
     *
     * @return void
     */
    public function execute() {
        drain_signal::task_started();
        if (drain_signal::follower_alive()) {
            mtrace('local_eventrelay: the follower (cli/drain.php --follow) is publishing; nothing to do.');
            return;
        }
        self::drain();
    }

    /**
     * Drains the outbox under the lock and reports on the task output.
     *
     * @return void
     */
    public static function drain(): void {
        if (!\local_eventrelay\local\config::load()->has_broker()) {
            mtrace('local_eventrelay: the broker is not configured; the outbox is kept.');
            return;
        }
        $result = outbox_drain::run(5, microtime(true) + self::MAX_RUN_SECONDS, function (string $line): void {
            mtrace('local_eventrelay: ' . $line);
        });
        if ($result === null) {
            mtrace('local_eventrelay: another drain is running.');
            return;
        }
        mtrace('local_eventrelay: ' . $result->summary());
    }
}
