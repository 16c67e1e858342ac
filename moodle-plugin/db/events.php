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
 * Observers of the twelve relayed events.
 *
 * Each event has two observers. relay() is 'internal' => true: it runs at once, inside the transaction of the
 * change, so that a row inserted there commits or rolls back with it. committed() is 'internal' => false:
 * Moodle runs it only after the outermost commit (never after a rollback), so the writer can keep a row
 * whose insert failed inside a transaction that then committed.
 *
 * @package    local_eventrelay
 * @copyright  2026 Moodle Event Relay contributors
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */

defined('MOODLE_INTERNAL') || die();

$observers = [
    [
        'eventname' => '\core\event\user_created',
        'callback' => '\local_eventrelay\observer::relay',
        'internal' => true,
    ],
    [
        'eventname' => '\core\event\user_created',
        'callback' => '\local_eventrelay\observer::committed',
        'internal' => false,
    ],
    [
        'eventname' => '\core\event\user_updated',
        'callback' => '\local_eventrelay\observer::relay',
        'internal' => true,
    ],
    [
        'eventname' => '\core\event\user_updated',
        'callback' => '\local_eventrelay\observer::committed',
        'internal' => false,
    ],
    [
        'eventname' => '\core\event\user_deleted',
        'callback' => '\local_eventrelay\observer::relay',
        'internal' => true,
    ],
    [
        'eventname' => '\core\event\user_deleted',
        'callback' => '\local_eventrelay\observer::committed',
        'internal' => false,
    ],
    [
        'eventname' => '\core\event\user_enrolment_created',
        'callback' => '\local_eventrelay\observer::relay',
        'internal' => true,
    ],
    [
        'eventname' => '\core\event\user_enrolment_created',
        'callback' => '\local_eventrelay\observer::committed',
        'internal' => false,
    ],
    [
        'eventname' => '\core\event\user_enrolment_updated',
        'callback' => '\local_eventrelay\observer::relay',
        'internal' => true,
    ],
    [
        'eventname' => '\core\event\user_enrolment_updated',
        'callback' => '\local_eventrelay\observer::committed',
        'internal' => false,
    ],
    [
        'eventname' => '\core\event\user_enrolment_deleted',
        'callback' => '\local_eventrelay\observer::relay',
        'internal' => true,
    ],
    [
        'eventname' => '\core\event\user_enrolment_deleted',
        'callback' => '\local_eventrelay\observer::committed',
        'internal' => false,
    ],
    [
        'eventname' => '\core\event\role_assigned',
        'callback' => '\local_eventrelay\observer::relay',
        'internal' => true,
    ],
    [
        'eventname' => '\core\event\role_assigned',
        'callback' => '\local_eventrelay\observer::committed',
        'internal' => false,
    ],
    [
        'eventname' => '\core\event\role_unassigned',
        'callback' => '\local_eventrelay\observer::relay',
        'internal' => true,
    ],
    [
        'eventname' => '\core\event\role_unassigned',
        'callback' => '\local_eventrelay\observer::committed',
        'internal' => false,
    ],
    [
        'eventname' => '\core\event\cohort_member_added',
        'callback' => '\local_eventrelay\observer::relay',
        'internal' => true,
    ],
    [
        'eventname' => '\core\event\cohort_member_added',
        'callback' => '\local_eventrelay\observer::committed',
        'internal' => false,
    ],
    [
        'eventname' => '\core\event\cohort_member_removed',
        'callback' => '\local_eventrelay\observer::relay',
        'internal' => true,
    ],
    [
        'eventname' => '\core\event\cohort_member_removed',
        'callback' => '\local_eventrelay\observer::committed',
        'internal' => false,
    ],
    [
        'eventname' => '\core\event\course_completed',
        'callback' => '\local_eventrelay\observer::relay',
        'internal' => true,
    ],
    [
        'eventname' => '\core\event\course_completed',
        'callback' => '\local_eventrelay\observer::committed',
        'internal' => false,
    ],
    [
        'eventname' => '\core\event\course_module_completion_updated',
        'callback' => '\local_eventrelay\observer::relay',
        'internal' => true,
    ],
    [
        'eventname' => '\core\event\course_module_completion_updated',
        'callback' => '\local_eventrelay\observer::committed',
        'internal' => false,
    ],
];
