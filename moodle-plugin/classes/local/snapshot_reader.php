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

use local_eventrelay\core\snapshot;

/**
 * Finds the entity snapshot of a Moodle event (Moodle glue): the row as it was when the event fired.
 *
 * It prefers the record snapshots Moodle attaches to the event (user, role assignment, cohort, completion
 * rows) and otherwise reads the row once through the event, which caches it. Deleted rows come from the
 * event itself (`other.userenrolment`, the role_assignments snapshot).
 *
 * @package    local_eventrelay
 * @copyright  2026 Moodle Event Relay contributors
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */
class snapshot_reader {
    /** @var string[] Role id => short name, read once per request. */
    private static $roleshortnames = [];

    /**
     * Returns the snapshot row of an event.
     *
     * @param string $type CloudEvent type of the event.
     * @param \core\event\base $event The event.
     * @return array The row, as the builder's {@see snapshot::make()} expects.
     * @throws \moodle_exception|\InvalidArgumentException When the entity cannot be found.
     */
    public static function read(string $type, \core\event\base $event): array {
        switch (snapshot::kind_for_type($type)) {
            case snapshot::KIND_USER:
                return self::user($type, $event);
            case snapshot::KIND_ENROLMENT:
                return self::enrolment($type, $event);
            case snapshot::KIND_ROLE_ASSIGNMENT:
                return self::role_assignment($event);
            case snapshot::KIND_COHORT_MEMBER:
                return self::cohort_member($type, $event);
            case snapshot::KIND_COURSE_COMPLETION:
                $row = self::required_row($event, 'course_completions', $event->objectid);
                $row['courseid'] = $row['courseid'] ?? $row['course'];
                return $row;
            default:
                return self::required_row($event, 'course_modules_completion', $event->objectid);
        }
    }

    /**
     * User events: the user record (for a deletion, the record as it was before, marked deleted; for an update
     * by user_update_user(), the record that update wrote, without reading it again).
     *
     * @param string $type CloudEvent type.
     * @param \core\event\base $event The event.
     * @return array The row.
     */
    private static function user(string $type, \core\event\base $event): array {
        if ($type === 'moodle.user.updated') {
            $row = user_update_snapshot::take((int) $event->objectid);
            if ($row !== null) {
                return $row;
            }
        }
        $row = self::required_row($event, 'user', $event->objectid);
        if ($type === 'moodle.user.deleted') {
            $row['deleted'] = 1;
        }
        return $row;
    }

    /**
     * Enrolment events: the user_enrolments row with the course and method.
     *
     * @param string $type CloudEvent type.
     * @param \core\event\base $event The event.
     * @return array The row.
     */
    private static function enrolment(string $type, \core\event\base $event): array {
        $other = (array) $event->other;
        if ($type === 'moodle.enrolment.deleted' && isset($other['userenrolment'])) {
            $row = (array) $other['userenrolment'];
        } else {
            $row = self::required_row($event, 'user_enrolments', $event->objectid);
        }
        $row['courseid'] = $row['courseid'] ?? $event->courseid;
        $row['enrol'] = $row['enrol'] ?? ($other['enrol'] ?? null);
        return $row;
    }

    /**
     * Role events: the role_assignments row with the role's short name and the context's level and instance.
     *
     * @param \core\event\base $event The event.
     * @return array The row.
     */
    private static function role_assignment(\core\event\base $event): array {
        $other = (array) $event->other;
        $ra = $event->get_record_snapshot('role_assignments', $other['id']);
        $row = $ra ? (array) $ra : [
            'id' => $other['id'],
            'roleid' => $event->objectid,
            'userid' => $event->relateduserid,
            'contextid' => $event->contextid,
            'component' => $other['component'] ?? '',
            'itemid' => $other['itemid'] ?? 0,
        ];
        $row['roleshortname'] = self::role_shortname((int) $row['roleid']);
        $row['contextlevel'] = $event->contextlevel;
        $row['instanceid'] = $event->contextinstanceid;
        return $row;
    }

    /**
     * Cohort events: the membership with the cohort's idnumber and name.
     *
     * @param string $type CloudEvent type.
     * @param \core\event\base $event The event.
     * @return array The row.
     */
    private static function cohort_member(string $type, \core\event\base $event): array {
        $cohort = $event->get_record_snapshot('cohort', $event->objectid);
        $row = [
            'cohortid' => $event->objectid,
            'userid' => $event->relateduserid,
            'cohortidnumber' => $cohort ? $cohort->idnumber : null,
            'cohortname' => $cohort ? $cohort->name : null,
        ];
        if ($type === 'moodle.cohort.member_added') {
            // The membership is written with time() just before the event: no read needed.
            $row['timeadded'] = $event->timecreated;
        }
        return $row;
    }

    /**
     * Returns a record snapshot of the event, or fails.
     *
     * @param \core\event\base $event The event.
     * @param string $table The table.
     * @param int|string $id The row id.
     * @return array The row.
     * @throws \invalid_parameter_exception When the row is gone.
     */
    private static function required_row(\core\event\base $event, string $table, $id): array {
        $record = $event->get_record_snapshot($table, $id);
        if (!$record) {
            throw new \invalid_parameter_exception("No {$table} row {$id} for " . $event->eventname);
        }
        return (array) $record;
    }

    /**
     * Returns a role's short name, read once per role and request.
     *
     * @param int $roleid The role id.
     * @return string|null The short name, or null if the role is gone.
     */
    private static function role_shortname(int $roleid): ?string {
        global $DB;
        if (!array_key_exists($roleid, self::$roleshortnames)) {
            $shortname = $DB->get_field('role', 'shortname', ['id' => $roleid]);
            self::$roleshortnames[$roleid] = $shortname === false ? null : $shortname;
        }
        return self::$roleshortnames[$roleid];
    }
}
