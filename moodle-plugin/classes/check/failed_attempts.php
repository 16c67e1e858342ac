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

namespace local_eventrelay\check;

use core\check\check;
use core\check\result;

/**
 * Check: outbox rows whose publishing failed at least once, with the latest (redacted) error.
 *
 * @package    local_eventrelay
 * @copyright  2026 Moodle Event Relay contributors
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */
class failed_attempts extends check {
    /**
     * Counts rows with failed attempts.
     *
     * @return result OK when none, WARNING otherwise, with the latest error in the details.
     */
    public function get_result(): result {
        global $DB;
        $count = $DB->count_records_select('local_eventrelay_outbox', 'attempts > 0');
        if ($count === 0) {
            return new result(result::OK, get_string('checkfailed_attempts_none', 'local_eventrelay'));
        }
        $latest = $DB->get_records_select(
            'local_eventrelay_outbox',
            'attempts > 0',
            [],
            'timelastattempt DESC, id DESC',
            'id, attempts, lasterror, timelastattempt',
            0,
            1
        );
        $latest = reset($latest);
        $a = (object) [
            'count' => $count,
            'time' => userdate((int) $latest->timelastattempt),
        ];
        return new result(
            result::WARNING,
            get_string('checkfailed_attempts_summary', 'local_eventrelay', $a),
            s((string) $latest->lasterror)
        );
    }
}
