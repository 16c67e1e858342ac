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

namespace local_eventrelay\core;

/**
 * The `subject` of an event: which user, in which course, context or cohort, the event is about.
 *
 * @package    local_eventrelay
 * @copyright  2026 Moodle Event Relay contributors
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */
class subject {
    /**
     * Makes the `subject` from the data.
     *
     * @param string $type CloudEvent type.
     * @param array $data The event's `data`, as {@see envelope_builder::build()} makes it.
     * @return string E.g. "user/42", "course/7/user/42", "context/1/user/42", "cohort/3/user/42".
     * @throws \InvalidArgumentException When an id the subject needs is missing or not positive.
     */
    public static function make(string $type, array $data): string {
        $user = self::positive($data['relateduserid'], 'relateduserid', $type);
        switch (event_types::entity($type)) {
            case 'user':
                return "user/{$user}";
            case 'cohort':
                return 'cohort/' . self::positive($data['objectid'], 'objectid', $type) . "/user/{$user}";
            case 'role':
                if ($data['courseid'] > 0) {
                    return "course/{$data['courseid']}/user/{$user}";
                }
                return 'context/' . self::positive($data['contextid'], 'contextid', $type) . "/user/{$user}";
            default:
                return 'course/' . self::positive($data['courseid'], 'courseid', $type) . "/user/{$user}";
        }
    }

    /**
     * Returns an id the subject needs, checking it is positive.
     *
     * @param int|null $value The id.
     * @param string $name Its field name, for the error message.
     * @param string $type CloudEvent type, for the error message.
     * @return int The id.
     * @throws \InvalidArgumentException When the id is null or not positive.
     */
    private static function positive(?int $value, string $name, string $type): int {
        if ($value === null || $value < 1) {
            throw new \InvalidArgumentException("A {$type} event needs a positive {$name} for its subject, got "
                . var_export($value, true));
        }
        return $value;
    }
}
