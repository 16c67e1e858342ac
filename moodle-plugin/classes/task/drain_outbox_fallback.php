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

/**
 * Drains the outbox every minute, in case no drain task was queued or the broker was down (and moves the spool
 * back into the outbox). Does nothing while the follower runs.
 *
 * @package    local_eventrelay
 * @copyright  2026 Moodle Event Relay contributors
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */
class drain_outbox_fallback extends \core\task\scheduled_task {
    /**
     * Returns the task's name.
     *
     * @return string The name.
     */
    public function get_name(): string {
        return get_string('taskdrainfallback', 'local_eventrelay');
    }

    /**
     * Drains the outbox.
     *
     * @return void
     */
    public function execute() {
        if (\local_eventrelay\local\drain_signal::follower_alive()) {
            mtrace('local_eventrelay: the follower (cli/drain.php --follow) is publishing; nothing to do.');
            return;
        }
        drain_outbox::drain();
    }
}
