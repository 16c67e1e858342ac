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
use local_eventrelay\local\config;

/**
 * Check: how long the oldest outbox row has waited (warning and error thresholds are settings).
 *
 * @package    local_eventrelay
 * @copyright  2026 Moodle Event Relay contributors
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */
class outbox_age extends check {
    /**
     * Compares the age of the oldest row with the thresholds.
     *
     * @return result OK, WARNING or ERROR with the number of rows and the age.
     */
    public function get_result(): result {
        global $DB;
        [$warning, $error] = config::load()->age_thresholds();
        $count = $DB->count_records('local_eventrelay_outbox');
        if ($count === 0) {
            return new result(result::OK, get_string('checkoutbox_age_empty', 'local_eventrelay'));
        }
        $oldest = $DB->get_field_sql('SELECT MIN(timecreated) FROM {local_eventrelay_outbox}');
        $age = max(0, time() - (int) $oldest);
        $a = (object) ['count' => $count, 'age' => format_time($age)];
        if ($age >= $error) {
            $status = result::ERROR;
        } else if ($age >= $warning) {
            $status = result::WARNING;
        } else {
            $status = result::OK;
        }
        return new result($status, get_string('checkoutbox_age_summary', 'local_eventrelay', $a));
    }
}
