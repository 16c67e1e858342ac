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

namespace local_eventrelay\tests;

/**
 * One event of each relayed type as the observer sees it (get_data() and the entity's row), for the
 * builder's and the outbox's tests.
 *
 * @package    local_eventrelay
 * @copyright  2026 Moodle Event Relay contributors
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */
class sample_events {
    /** @var string A bcrypt-like hash as Moodle stores in user.password. */
    public const PASSWORD_HASH = '$2y$10$Q9wqv0J8bGk3q1m5Z7xY8uYk5r0d0mKq1Zc2Yw3Xv4Uu5Tt6Ss7Rr';

    /**
     * Returns a user record as Moodle's DB layer returns it (all strings), password hash included.
     *
     * @return array The row.
     */
    public static function user_row(): array {
        return [
            'id' => '42', 'auth' => 'manual', 'confirmed' => '1', 'policyagreed' => '0', 'deleted' => '0',
            'suspended' => '0', 'mnethostid' => '1', 'username' => 's.mensah', 'password' => self::PASSWORD_HASH,
            'idnumber' => 'S-2026-0042', 'firstname' => 'Sena', 'lastname' => 'Mênsah', 'email' => 's.mensah@example.edu',
            'emailstop' => '0', 'phone1' => '+233 20 000 0000', 'phone2' => '', 'institution' => 'Faculty of Science',
            'department' => 'Physics', 'address' => '', 'city' => 'Accra', 'country' => 'GH', 'lang' => 'en',
            'calendartype' => 'gregorian', 'theme' => '', 'timezone' => '99', 'firstaccess' => '0', 'lastaccess' => '0',
            'lastlogin' => '0', 'currentlogin' => '0', 'lastip' => '192.0.2.7', 'secret' => 'abc', 'picture' => '0',
            'description' => '<p>Hi</p>', 'descriptionformat' => '1', 'mailformat' => '1', 'maildigest' => '0',
            'maildisplay' => '2', 'autosubscribe' => '1', 'trackforums' => '0', 'timecreated' => '1795511702',
            'timemodified' => '1795511702', 'trustbitmask' => '0', 'imagealt' => null, 'lastnamephonetic' => null,
            'firstnamephonetic' => null, 'middlename' => null, 'alternatename' => null, 'moodlenetprofile' => null,
        ];
    }

    /**
     * Returns get_data() of a user event with native PHP types.
     *
     * @param string $action created, updated or deleted.
     * @param array|null $other The event's other.
     * @return array The event data.
     */
    public static function user_event(string $action = 'created', ?array $other = null): array {
        return [
            'eventname' => "\\core\\event\\user_{$action}", 'component' => 'core', 'action' => $action,
            'target' => 'user', 'objecttable' => 'user', 'objectid' => 42, 'crud' => $action[0], 'edulevel' => 0,
            'contextid' => 137, 'contextlevel' => 30, 'contextinstanceid' => 42, 'userid' => 2, 'courseid' => 0,
            'relateduserid' => 42, 'anonymous' => 0, 'other' => $other, 'timecreated' => 1795511702,
        ];
    }

    /**
     * Returns get_data() and the snapshot of one event of each type, with native PHP types
     * (the fixtures test covers numeric strings).
     *
     * @return array[] type => [event data, snapshot]
     */
    public static function one_per_type(): array {
        $base = ['component' => 'core', 'edulevel' => 0, 'userid' => 2, 'anonymous' => 0, 'timecreated' => 1795511702,
            'contextid' => 201, 'contextlevel' => 50, 'contextinstanceid' => 7, 'courseid' => 7, 'relateduserid' => 42];
        $ue = ['id' => 311, 'enrolid' => 19, 'userid' => 42, 'courseid' => 7, 'enrol' => 'self', 'status' => 0,
            'timestart' => 0, 'timeend' => 0, 'timecreated' => 1795511702, 'timemodified' => 1795511702];
        $ra = ['id' => 877, 'roleid' => 5, 'roleshortname' => 'student', 'userid' => 42, 'contextid' => 201,
            'contextlevel' => 50, 'instanceid' => 7, 'component' => '', 'itemid' => 0, 'timemodified' => 1795511702];
        $cohort = ['cohortid' => 3, 'userid' => 42, 'cohortidnumber' => 'PHYS-2026', 'cohortname' => 'Physics',
            'timeadded' => 1795511702];
        $system = ['contextid' => 1, 'contextlevel' => 10, 'contextinstanceid' => 0, 'courseid' => 0];
        $userdeleted = ['username' => 's.mensah', 'email' => 's.mensah@example.edu', 'idnumber' => '',
            'picture' => 0, 'mnethostid' => 1];
        return [
            'moodle.user.created' => [self::user_event('created'), self::user_row()],
            'moodle.user.updated' => [self::user_event('updated', []), self::user_row()],
            'moodle.user.deleted' => [self::user_event('deleted', $userdeleted), ['deleted' => 1] + self::user_row()],
            'moodle.enrolment.created' => [['eventname' => '\\core\\event\\user_enrolment_created', 'objectid' => 311,
                'crud' => 'c', 'other' => ['enrol' => 'self']] + $base, $ue],
            'moodle.enrolment.updated' => [['eventname' => '\\core\\event\\user_enrolment_updated', 'objectid' => 311,
                'crud' => 'u', 'other' => ['enrol' => 'self']] + $base, ['status' => 1] + $ue],
            'moodle.enrolment.deleted' => [['eventname' => '\\core\\event\\user_enrolment_deleted', 'objectid' => 311,
                'crud' => 'd', 'other' => ['userenrolment' => $ue + ['lastenrol' => false], 'enrol' => 'self']] + $base,
                $ue + ['lastenrol' => false]],
            'moodle.role.assigned' => [['eventname' => '\\core\\event\\role_assigned', 'objectid' => 5, 'crud' => 'c',
                'other' => ['id' => 877, 'component' => '', 'itemid' => 0]] + $base, $ra],
            'moodle.role.unassigned' => [['eventname' => '\\core\\event\\role_unassigned', 'objectid' => 1, 'crud' => 'd',
                'other' => ['id' => 878, 'component' => 'enrol_cohort', 'itemid' => 4]] + $system + $base,
                ['id' => 878, 'roleid' => 1, 'userid' => 42, 'contextid' => 1]],
            'moodle.cohort.member_added' => [['eventname' => '\\core\\event\\cohort_member_added', 'objectid' => 3,
                'crud' => 'c', 'other' => null, 'contextlevel' => 40, 'contextinstanceid' => 9] + $system + $base, $cohort],
            'moodle.cohort.member_removed' => [['eventname' => '\\core\\event\\cohort_member_removed', 'objectid' => 3,
                'crud' => 'd', 'other' => null] + $system + $base, ['cohortid' => 3, 'userid' => 42]],
            'moodle.completion.course_completed' => [['eventname' => '\\core\\event\\course_completed', 'objectid' => 5120,
                'crud' => 'u', 'userid' => 0, 'other' => ['relateduserid' => 42]] + $base,
                ['id' => 5120, 'userid' => 42, 'courseid' => 7, 'timecompleted' => 1795515300, 'reaggregate' => 0]],
            'moodle.completion.module_updated' => [['eventname' => '\\core\\event\\course_module_completion_updated',
                'objectid' => 90210, 'crud' => 'u', 'contextlevel' => 70, 'contextinstanceid' => 61,
                'other' => ['relateduserid' => 42, 'overrideby' => 2, 'completionstate' => 3]] + $base,
                ['id' => 90210, 'coursemoduleid' => 61, 'userid' => 42, 'completionstate' => 3, 'overrideby' => 2,
                    'timemodified' => 1795515000]],
        ];
    }
}
