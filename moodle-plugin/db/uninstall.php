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
 * Uninstall of local_eventrelay.
 *
 * @package    local_eventrelay
 * @copyright  2026 Moodle Event Relay contributors
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */

/**
 * Removes what Moodle does not remove by itself: the spool folder under moodledata. (The outbox table, the
 * settings, the tasks, the cache and the observers go with the plugin, unpublished events with them.)
 *
 * @return bool Always true.
 */
function xmldb_local_eventrelay_uninstall() {
    global $CFG;
    remove_dir($CFG->dataroot . '/local_eventrelay');
    return true;
}
