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
use local_eventrelay\local\spool_store;

/**
 * Check: events the outbox insert could not take, kept in the spool under moodledata, until the broker has
 * confirmed them.
 *
 * OK when none is waiting; WARNING while spooled events wait (in the spool, or moved back into the outbox
 * and not yet published); ERROR when a spool file could not be read back and needs the administrator.
 *
 * @package    local_eventrelay
 * @copyright  2026 Moodle Event Relay contributors
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */
class spool extends check {
    /**
     * Counts the spooled events not yet published.
     *
     * @return result The state, with the counts and where the files are in the details.
     */
    public function get_result(): result {
        $store = spool_store::instance();
        $pending = $store->pending();
        $a = (object) [
            'spool' => $pending['spool'],
            'outbox' => $pending['outbox'],
            'bad' => $pending['bad'],
            'total' => (int) get_config(config::COMPONENT, 'spooledtotal'),
            'dir' => $store->spool()->dir(),
        ];
        $details = get_string('checkspool_details', 'local_eventrelay', $a);
        if ($pending['bad'] > 0) {
            return new result(result::ERROR, get_string('checkspool_bad', 'local_eventrelay', $a), $details);
        }
        if ($pending['spool'] + $pending['outbox'] > 0) {
            return new result(result::WARNING, get_string('checkspool_waiting', 'local_eventrelay', $a), $details);
        }
        return new result(result::OK, get_string('checkspool_none', 'local_eventrelay', $a), $details);
    }
}
