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

namespace local_eventrelay\local;

/**
 * The entity snapshots of the event contract (the *Snapshot definitions of cloudevent.schema.json).
 *
 * A snapshot is made from a database-row-like array: only the fields the schema defines are kept,
 * in the schema's order, and each is cast to the schema's type. Anything else (a password hash,
 * a last IP address, a column added by a later Moodle) is dropped.
 *
 * @package    local_eventrelay
 * @copyright  2026 Moodle Event Relay contributors
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */
class snapshot {
    /** @var string The user record (userSnapshot). */
    const KIND_USER = 'user';

    /** @var string The user_enrolments row with course and method (enrolmentSnapshot). */
    const KIND_ENROLMENT = 'enrolment';

    /** @var string The role assignment (roleAssignmentSnapshot). */
    const KIND_ROLE_ASSIGNMENT = 'role_assignment';

    /** @var string The cohort membership (cohortMemberSnapshot). */
    const KIND_COHORT_MEMBER = 'cohort_member';

    /** @var string The course_completions row (courseCompletionSnapshot). */
    const KIND_COURSE_COMPLETION = 'course_completion';

    /** @var string The course_modules_completion row (moduleCompletionSnapshot). */
    const KIND_MODULE_COMPLETION = 'module_completion';

    /** @var string Cast to an integer. */
    const CAST_INT = 'int';

    /** @var string Cast to an integer, null allowed. */
    const CAST_NULLABLE_INT = '?int';

    /** @var string Cast to a string. */
    const CAST_STRING = 'string';

    /** @var string Cast to a boolean (Moodle stores 0/1). */
    const CAST_BOOL = 'bool';

    /** @var string[] CloudEvent type => snapshot kind. */
    const KIND_FOR_TYPE = [
        'moodle.user.created' => self::KIND_USER,
        'moodle.user.updated' => self::KIND_USER,
        'moodle.user.deleted' => self::KIND_USER,
        'moodle.enrolment.created' => self::KIND_ENROLMENT,
        'moodle.enrolment.updated' => self::KIND_ENROLMENT,
        'moodle.enrolment.deleted' => self::KIND_ENROLMENT,
        'moodle.role.assigned' => self::KIND_ROLE_ASSIGNMENT,
        'moodle.role.unassigned' => self::KIND_ROLE_ASSIGNMENT,
        'moodle.cohort.member_added' => self::KIND_COHORT_MEMBER,
        'moodle.cohort.member_removed' => self::KIND_COHORT_MEMBER,
        'moodle.completion.course_completed' => self::KIND_COURSE_COMPLETION,
        'moodle.completion.module_updated' => self::KIND_MODULE_COMPLETION,
    ];

    /**
     * @var array[] Snapshot kind => [field => cast], in the schema's order. Exactly the schema's properties.
     */
    const FIELDS = [
        self::KIND_USER => [
            'id' => self::CAST_INT,
            'username' => self::CAST_STRING,
            'email' => self::CAST_STRING,
            'idnumber' => self::CAST_STRING,
            'auth' => self::CAST_STRING,
            'firstname' => self::CAST_STRING,
            'lastname' => self::CAST_STRING,
            'middlename' => self::CAST_STRING,
            'alternatename' => self::CAST_STRING,
            'firstnamephonetic' => self::CAST_STRING,
            'lastnamephonetic' => self::CAST_STRING,
            'institution' => self::CAST_STRING,
            'department' => self::CAST_STRING,
            'city' => self::CAST_STRING,
            'country' => self::CAST_STRING,
            'address' => self::CAST_STRING,
            'phone1' => self::CAST_STRING,
            'phone2' => self::CAST_STRING,
            'lang' => self::CAST_STRING,
            'timezone' => self::CAST_STRING,
            'suspended' => self::CAST_BOOL,
            'deleted' => self::CAST_BOOL,
            'confirmed' => self::CAST_BOOL,
            'mnethostid' => self::CAST_INT,
            'picture' => self::CAST_INT,
            'firstaccess' => self::CAST_INT,
            'lastaccess' => self::CAST_INT,
            'lastlogin' => self::CAST_INT,
            'timecreated' => self::CAST_INT,
            'timemodified' => self::CAST_INT,
        ],
        self::KIND_ENROLMENT => [
            'id' => self::CAST_INT,
            'enrolid' => self::CAST_INT,
            'userid' => self::CAST_INT,
            'courseid' => self::CAST_INT,
            'enrol' => self::CAST_STRING,
            'status' => self::CAST_INT,
            'timestart' => self::CAST_INT,
            'timeend' => self::CAST_INT,
            'timecreated' => self::CAST_INT,
            'timemodified' => self::CAST_INT,
            'lastenrol' => self::CAST_BOOL,
        ],
        self::KIND_ROLE_ASSIGNMENT => [
            'id' => self::CAST_INT,
            'roleid' => self::CAST_INT,
            'roleshortname' => self::CAST_STRING,
            'userid' => self::CAST_INT,
            'contextid' => self::CAST_INT,
            'contextlevel' => self::CAST_INT,
            'instanceid' => self::CAST_INT,
            'component' => self::CAST_STRING,
            'itemid' => self::CAST_INT,
            'timemodified' => self::CAST_INT,
        ],
        self::KIND_COHORT_MEMBER => [
            'cohortid' => self::CAST_INT,
            'userid' => self::CAST_INT,
            'cohortidnumber' => self::CAST_STRING,
            'cohortname' => self::CAST_STRING,
            'timeadded' => self::CAST_INT,
        ],
        self::KIND_COURSE_COMPLETION => [
            'id' => self::CAST_INT,
            'userid' => self::CAST_INT,
            'courseid' => self::CAST_INT,
            'timeenrolled' => self::CAST_INT,
            'timestarted' => self::CAST_INT,
            'timecompleted' => self::CAST_INT,
        ],
        self::KIND_MODULE_COMPLETION => [
            'id' => self::CAST_INT,
            'coursemoduleid' => self::CAST_INT,
            'userid' => self::CAST_INT,
            'completionstate' => self::CAST_INT,
            'overrideby' => self::CAST_NULLABLE_INT,
            'timemodified' => self::CAST_INT,
        ],
    ];

    /**
     * @var array[] Snapshot kind => fields the schema requires.
     */
    const REQUIRED = [
        self::KIND_USER => ['id'],
        self::KIND_ENROLMENT => ['id', 'userid', 'courseid', 'enrol'],
        self::KIND_ROLE_ASSIGNMENT => ['id', 'roleid', 'userid', 'contextid'],
        self::KIND_COHORT_MEMBER => ['cohortid', 'userid'],
        self::KIND_COURSE_COMPLETION => ['id', 'userid', 'courseid', 'timecompleted'],
        self::KIND_MODULE_COMPLETION => ['id', 'coursemoduleid', 'userid', 'completionstate'],
    ];

    /**
     * Returns the snapshot kind of a CloudEvent type.
     *
     * @param string $type CloudEvent type, e.g. "moodle.role.assigned".
     * @return string One of the KIND_* constants.
     * @throws \InvalidArgumentException When the type is unknown.
     */
    public static function kind_for_type(string $type): string {
        if (!isset(self::KIND_FOR_TYPE[$type])) {
            throw new \InvalidArgumentException("Unknown event type '{$type}'");
        }
        return self::KIND_FOR_TYPE[$type];
    }

    /**
     * Returns the names of the user fields a user snapshot may carry (what an admin can choose from).
     *
     * @return string[] Field names in the schema's order, "id" included.
     */
    public static function user_field_names(): array {
        return array_keys(self::FIELDS[self::KIND_USER]);
    }

    /**
     * Makes a snapshot from a database-row-like array.
     *
     * Keeps only the fields the schema defines for the kind (and, when $allowed is given, only those
     * of them that are listed there, plus the required ones), in the schema's order, cast to the schema's
     * types. A field whose value is null is left out unless its schema type allows null.
     *
     * @param string $kind One of the KIND_* constants.
     * @param array|object $row The record, e.g. a DB row with numeric strings, or an array.
     * @param string[]|null $allowed Field names that may appear; null for all the schema defines.
     * @return array The snapshot; never empty, because every kind has required fields.
     * @throws \InvalidArgumentException When the kind is unknown, a required field is missing or a value cannot be cast.
     */
    public static function make(string $kind, array|object $row, ?array $allowed = null): array {
        if (!isset(self::FIELDS[$kind])) {
            throw new \InvalidArgumentException("Unknown snapshot kind '{$kind}'");
        }
        if (is_object($row)) {
            $row = get_object_vars($row);
        }
        $required = self::REQUIRED[$kind];
        $snapshot = [];
        foreach (self::FIELDS[$kind] as $field => $cast) {
            $isrequired = in_array($field, $required, true);
            if (!$isrequired && $allowed !== null && !in_array($field, $allowed, true)) {
                continue;
            }
            $present = array_key_exists($field, $row) && ($row[$field] !== null || $cast === self::CAST_NULLABLE_INT);
            if (!$present) {
                if ($isrequired) {
                    throw new \InvalidArgumentException("The {$kind} snapshot lacks its required field '{$field}'");
                }
                continue;
            }
            $snapshot[$field] = self::cast($row[$field], $cast, "snapshot.{$field}");
        }
        return $snapshot;
    }

    /**
     * Casts one value as the schema demands.
     *
     * Integers are accepted as ints, integral floats, booleans and decimal strings (as Moodle's DB layer
     * returns them); booleans as bools and 0/1 in any of those forms; strings as strings and numbers.
     *
     * @param mixed $value The value.
     * @param string $cast One of the CAST_* constants.
     * @param string $name Where the value is, for the error message, e.g. "snapshot.id".
     * @return int|string|bool|null The cast value.
     * @throws \InvalidArgumentException When the value cannot be cast without losing meaning.
     */
    public static function cast($value, string $cast, string $name) {
        switch ($cast) {
            case self::CAST_NULLABLE_INT:
                return $value === null ? null : self::to_int($value, $name);
            case self::CAST_INT:
                return self::to_int($value, $name);
            case self::CAST_BOOL:
                return self::to_bool($value, $name);
            case self::CAST_STRING:
                return self::to_string($value, $name);
        }
        throw new \InvalidArgumentException("Unknown cast '{$cast}' for {$name}");
    }

    /**
     * Casts a value to an integer, refusing anything that is not an integer in disguise.
     *
     * @param mixed $value An int, an integral float, a bool or a decimal string such as "42" or "-1".
     * @param string $name Where the value is, for the error message.
     * @return int The integer.
     * @throws \InvalidArgumentException When the value is not an integer (e.g. "abc", "1.5", null, an array).
     */
    public static function to_int($value, string $name): int {
        if (is_int($value)) {
            return $value;
        }
        if (is_bool($value)) {
            return $value ? 1 : 0;
        }
        if (is_float($value) && is_finite($value) && floor($value) === $value && abs($value) < 9.0E15) {
            return (int) $value;
        }
        if (is_string($value) && preg_match('/^-?[0-9]+$/D', $value) === 1) {
            $int = filter_var(self::strip_leading_zeros($value), FILTER_VALIDATE_INT);
            if ($int !== false) {
                return $int;
            }
        }
        throw new \InvalidArgumentException("{$name} must be an integer, got " . self::describe($value));
    }

    /**
     * Casts a value to a boolean: true, false, 1, 0, "1", "0" (and "" for false, as PHP writes false).
     *
     * @param mixed $value The value.
     * @param string $name Where the value is, for the error message.
     * @return bool The boolean.
     * @throws \InvalidArgumentException When the value is not one of the accepted forms.
     */
    public static function to_bool($value, string $name): bool {
        if (is_bool($value)) {
            return $value;
        }
        if ($value === 1 || $value === '1') {
            return true;
        }
        if ($value === 0 || $value === '0' || $value === '') {
            return false;
        }
        throw new \InvalidArgumentException("{$name} must be a boolean (0 or 1), got " . self::describe($value));
    }

    /**
     * Casts a value to a string: strings as they are, ints and floats in their decimal form.
     *
     * @param mixed $value The value.
     * @param string $name Where the value is, for the error message.
     * @return string The string.
     * @throws \InvalidArgumentException When the value is a bool, null, an array or an object.
     */
    public static function to_string($value, string $name): string {
        if (is_string($value)) {
            return $value;
        }
        if (is_int($value) || is_float($value)) {
            return (string) $value;
        }
        throw new \InvalidArgumentException("{$name} must be a string, got " . self::describe($value));
    }

    /**
     * Removes leading zeros from a decimal string so that filter_var() reads it as decimal.
     *
     * @param string $value A string matching /^-?[0-9]+$/.
     * @return string The same number without leading zeros, "0" for zero.
     */
    private static function strip_leading_zeros(string $value): string {
        $negative = $value[0] === '-';
        $digits = ltrim($negative ? substr($value, 1) : $value, '0');
        if ($digits === '') {
            return '0';
        }
        return ($negative ? '-' : '') . $digits;
    }

    /**
     * Describes a value briefly for an error message.
     *
     * @param mixed $value The value.
     * @return string E.g. "string 'abc'", "NULL", "array".
     */
    private static function describe($value): string {
        if (is_string($value)) {
            return "string '" . (strlen($value) > 40 ? substr($value, 0, 40) . '...' : $value) . "'";
        }
        if (is_scalar($value)) {
            return gettype($value) . ' ' . var_export($value, true);
        }
        return gettype($value);
    }
}
