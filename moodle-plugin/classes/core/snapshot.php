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
 * The entity snapshots of the event contract (the *Snapshot definitions of cloudevent.schema.json).
 *
 * A snapshot is made from a database-row-like array: only the fields the schema defines are kept,
 * in the schema's order, and each is cast to the schema's type ({@see cast}). Anything else (a password
 * hash, a last IP address, a column added by a later Moodle) is dropped.
 *
 * @package    local_eventrelay
 * @copyright  2026 Moodle Event Relay contributors
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */
class snapshot {
    /** @var string The user record (userSnapshot). */
    public const KIND_USER = 'user';

    /** @var string The user_enrolments row with course and method (enrolmentSnapshot). */
    public const KIND_ENROLMENT = 'enrolment';

    /** @var string The role assignment (roleAssignmentSnapshot). */
    public const KIND_ROLE_ASSIGNMENT = 'role_assignment';

    /** @var string The cohort membership (cohortMemberSnapshot). */
    public const KIND_COHORT_MEMBER = 'cohort_member';

    /** @var string The course_completions row (courseCompletionSnapshot). */
    public const KIND_COURSE_COMPLETION = 'course_completion';

    /** @var string The course_modules_completion row (moduleCompletionSnapshot). */
    public const KIND_MODULE_COMPLETION = 'module_completion';

    /** @var string[] CloudEvent type => snapshot kind. */
    public const KIND_FOR_TYPE = [
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
     * @var string[] User fields a user snapshot carries when the admin has not chosen: identity and status
     * fields, no contact details beyond e-mail. "id" is always carried whatever the setting says.
     */
    public const DEFAULT_USER_FIELDS = [
        'id',
        'username',
        'email',
        'idnumber',
        'auth',
        'firstname',
        'lastname',
        'institution',
        'department',
        'suspended',
        'deleted',
        'confirmed',
        'mnethostid',
        'picture',
        'timecreated',
        'timemodified',
    ];

    /**
     * @var array[] Snapshot kind => [field => cast], in the schema's order. Exactly the schema's properties.
     */
    public const FIELDS = [
        self::KIND_USER => [
            'id' => cast::INT,
            'username' => cast::STRING,
            'email' => cast::STRING,
            'idnumber' => cast::STRING,
            'auth' => cast::STRING,
            'firstname' => cast::STRING,
            'lastname' => cast::STRING,
            'middlename' => cast::STRING,
            'alternatename' => cast::STRING,
            'firstnamephonetic' => cast::STRING,
            'lastnamephonetic' => cast::STRING,
            'institution' => cast::STRING,
            'department' => cast::STRING,
            'city' => cast::STRING,
            'country' => cast::STRING,
            'address' => cast::STRING,
            'phone1' => cast::STRING,
            'phone2' => cast::STRING,
            'lang' => cast::STRING,
            'timezone' => cast::STRING,
            'suspended' => cast::BOOL,
            'deleted' => cast::BOOL,
            'confirmed' => cast::BOOL,
            'mnethostid' => cast::INT,
            'picture' => cast::INT,
            'firstaccess' => cast::INT,
            'lastaccess' => cast::INT,
            'lastlogin' => cast::INT,
            'timecreated' => cast::INT,
            'timemodified' => cast::INT,
        ],
        self::KIND_ENROLMENT => [
            'id' => cast::INT,
            'enrolid' => cast::INT,
            'userid' => cast::INT,
            'courseid' => cast::INT,
            'enrol' => cast::STRING,
            'status' => cast::INT,
            'timestart' => cast::INT,
            'timeend' => cast::INT,
            'timecreated' => cast::INT,
            'timemodified' => cast::INT,
            'lastenrol' => cast::BOOL,
        ],
        self::KIND_ROLE_ASSIGNMENT => [
            'id' => cast::INT,
            'roleid' => cast::INT,
            'roleshortname' => cast::STRING,
            'userid' => cast::INT,
            'contextid' => cast::INT,
            'contextlevel' => cast::INT,
            'instanceid' => cast::INT,
            'component' => cast::STRING,
            'itemid' => cast::INT,
            'timemodified' => cast::INT,
        ],
        self::KIND_COHORT_MEMBER => [
            'cohortid' => cast::INT,
            'userid' => cast::INT,
            'cohortidnumber' => cast::STRING,
            'cohortname' => cast::STRING,
            'timeadded' => cast::INT,
        ],
        self::KIND_COURSE_COMPLETION => [
            'id' => cast::INT,
            'userid' => cast::INT,
            'courseid' => cast::INT,
            'timeenrolled' => cast::INT,
            'timestarted' => cast::INT,
            'timecompleted' => cast::INT,
        ],
        self::KIND_MODULE_COMPLETION => [
            'id' => cast::INT,
            'coursemoduleid' => cast::INT,
            'userid' => cast::INT,
            'completionstate' => cast::INT,
            'overrideby' => cast::NULLABLE_INT,
            'timemodified' => cast::INT,
        ],
    ];

    /**
     * @var array[] Snapshot kind => fields the schema requires.
     */
    public const REQUIRED = [
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
        $required = array_flip(self::REQUIRED[$kind]);
        $allowed = $allowed === null ? null : array_flip($allowed);
        $snapshot = [];
        foreach (self::FIELDS[$kind] as $field => $cast) {
            $isrequired = isset($required[$field]);
            if (!$isrequired && $allowed !== null && !isset($allowed[$field])) {
                continue;
            }
            $present = array_key_exists($field, $row) && ($row[$field] !== null || $cast === cast::NULLABLE_INT);
            if (!$present) {
                if ($isrequired) {
                    throw new \InvalidArgumentException("The {$kind} snapshot lacks its required field '{$field}'");
                }
                continue;
            }
            $snapshot[$field] = cast::apply($row[$field], $cast, "snapshot.{$field}");
        }
        return $snapshot;
    }
}
