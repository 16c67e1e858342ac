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
 * Install steps of local_eventrelay.
 *
 * @package    local_eventrelay
 * @copyright  2026 Moodle Event Relay contributors
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */

/**
 * Starts the outbox ids, which are the events' sequence, at the install time in milliseconds.
 *
 * Consumers drop an event whose sequence is not above the last one they saw. Starting at 1 would make every
 * event of a reinstalled plugin look stale; milliseconds since 1970 are above any sequence an earlier
 * install can have reached (that would take more than 1,000 events per second since 1970).
 *
 * @return bool Always true.
 */
function xmldb_local_eventrelay_install() {
    global $DB;
    $start = (int) floor(microtime(true) * 1000);
    // A row with an explicit id moves the sequence past it (portable across databases); it is removed at once.
    $DB->insert_record_raw('local_eventrelay_outbox', [
        'id' => $start,
        'eventid' => 'sequence-start',
        'eventtype' => '',
        'routingkey' => '',
        'envelope' => '',
        'timecreated' => time(),
        'attempts' => 0,
    ], false, false, true);
    $DB->get_manager()->reset_sequence(new xmldb_table('local_eventrelay_outbox'));
    $DB->delete_records('local_eventrelay_outbox', ['id' => $start]);
    return true;
}
