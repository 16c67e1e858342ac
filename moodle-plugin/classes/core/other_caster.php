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
 * Makes an event's `data.other`: the event's `other` with the keys the contract types cast, per event type.
 *
 * @package    local_eventrelay
 * @copyright  2026 Moodle Event Relay contributors
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */
class other_caster {
    /**
     * @var array[] CloudEvent type => [key of `other` => cast]. Keys not listed are passed on as they are;
     * a null value stays null. The cast "userenrolment" is the user_enrolments row of an unenrolment.
     */
    public const CASTS = [
        'moodle.user.deleted' => [
            'username' => cast::STRING,
            'email' => cast::STRING,
            'idnumber' => cast::STRING,
            'picture' => cast::INT,
            'mnethostid' => cast::INT,
        ],
        'moodle.enrolment.created' => [
            'enrol' => cast::STRING,
        ],
        'moodle.enrolment.updated' => [
            'enrol' => cast::STRING,
        ],
        'moodle.enrolment.deleted' => [
            'enrol' => cast::STRING,
            'userenrolment' => 'userenrolment',
        ],
        'moodle.role.assigned' => [
            'id' => cast::INT,
            'component' => cast::STRING,
            'itemid' => cast::INT,
        ],
        'moodle.role.unassigned' => [
            'id' => cast::INT,
            'component' => cast::STRING,
            'itemid' => cast::INT,
        ],
        'moodle.completion.course_completed' => [
            'relateduserid' => cast::INT,
        ],
        'moodle.completion.module_updated' => [
            'relateduserid' => cast::INT,
            'completionstate' => cast::INT,
            'overrideby' => cast::NULLABLE_INT,
        ],
    ];

    /**
     * Makes `data.other`: null, or an object with the type's known keys cast.
     *
     * @param string $type CloudEvent type.
     * @param mixed $other The event's `other`: null, an array or an object.
     * @return array|\stdClass|null Null, a non-empty associative array, or a stdClass (so that it encodes as {}).
     * @throws \InvalidArgumentException When `other` is a scalar or a known key cannot be cast.
     */
    public static function cast(string $type, $other) {
        if ($other === null) {
            return null;
        }
        if (is_object($other)) {
            $other = self::object_to_array($other);
        }
        if (!is_array($other)) {
            throw new \InvalidArgumentException('The event data other must be null or an array');
        }
        foreach (self::CASTS[$type] ?? [] as $key => $cast) {
            if (!array_key_exists($key, $other) || $other[$key] === null) {
                continue;
            }
            if ($cast === 'userenrolment') {
                $other[$key] = self::cast_user_enrolment($other[$key]);
            } else {
                $other[$key] = cast::apply($other[$key], $cast, "other.{$key}");
            }
        }
        if ($other === [] || array_is_list($other)) {
            // A JSON object either way: {} rather than [], {"0": ...} rather than [...].
            return (object) $other;
        }
        return $other;
    }

    /**
     * Casts the user_enrolments row Moodle passes in `other.userenrolment` of an unenrolment:
     * ids, times and status to int, enrol to string, lastenrol to bool; anything else as it is.
     *
     * @param mixed $row The row, an array or an object.
     * @return array|\stdClass The row cast; a stdClass when empty (so that it encodes as {}).
     * @throws \InvalidArgumentException When the row is not an array or a value cannot be cast.
     */
    private static function cast_user_enrolment($row) {
        if (is_object($row)) {
            $row = self::object_to_array($row);
        }
        if (!is_array($row)) {
            throw new \InvalidArgumentException('other.userenrolment must be an array');
        }
        foreach ($row as $key => $value) {
            if ($value === null || !is_string($key)) {
                continue;
            }
            $name = "other.userenrolment.{$key}";
            if ($key === 'lastenrol') {
                $row[$key] = cast::to_bool($value, $name);
            } else if ($key === 'enrol') {
                $row[$key] = cast::to_string($value, $name);
            } else if ($key === 'status' || preg_match('/^(?:.*id|time.*)$/D', $key) === 1) {
                $row[$key] = cast::to_int($value, $name);
            }
        }
        return $row === [] ? new \stdClass() : $row;
    }

    /**
     * Turns an object into an array, and any object inside it (also inside arrays), as json_decode(..., true) would.
     *
     * @param object $object The object.
     * @return array Its public properties.
     */
    private static function object_to_array(object $object): array {
        $plain = function ($value) use (&$plain) {
            if (is_object($value)) {
                $value = get_object_vars($value);
            }
            if (is_array($value)) {
                foreach ($value as $key => $item) {
                    $value[$key] = $plain($item);
                }
            }
            return $value;
        };
        return $plain($object);
    }
}
