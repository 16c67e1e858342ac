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

namespace local_eventrelay\admin;

use local_eventrelay\core\event_types;
use local_eventrelay\local\config;

/**
 * Admin setting "events": a comma-separated list of CloudEvent types to relay, empty for all.
 *
 * @package    local_eventrelay
 * @copyright  2026 Moodle Event Relay contributors
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */
class setting_event_types extends \admin_setting_configtext {
    /**
     * Refuses unknown types, naming them.
     *
     * @param string $data The submitted value.
     * @return true|string True, or the error message.
     */
    public function validate($data) {
        $unknown = array_filter(config::parse_list((string) $data), function (string $type): bool {
            return !event_types::is_known_type($type);
        });
        if ($unknown) {
            return get_string('eventsunknown', 'local_eventrelay', implode(', ', $unknown));
        }
        return true;
    }
}
