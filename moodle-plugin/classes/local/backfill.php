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

use local_eventrelay\core\envelope_builder;
use local_eventrelay\core\event_types;
use local_eventrelay\core\json_encoder;

/**
 * Backfill (Moodle glue): writes the current state of users, enrolments and course completions to the outbox
 * as events of the usual types with `data.backfill = true`, so that a new downstream system can start
 * from a full picture. The drain publishes them like any other event, in sequence order.
 *
 * Resumable: each batch is inserted in one transaction together with the source's cursor (the last id
 * written), kept in the plugin's config; a run started again with the same filters goes on from there.
 *
 * @package    local_eventrelay
 * @copyright  2026 Moodle Event Relay contributors
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */
class backfill {
    /** @var string[] Source => CloudEvent type of its events. */
    public const SOURCES = [
        'users' => 'moodle.user.created',
        'enrolments' => 'moodle.enrolment.created',
        'completions' => 'moodle.completion.course_completed',
    ];

    /** @var config The plugin settings. */
    private $config;

    /** @var envelope_builder The builder. */
    private $builder;

    /** @var int[] Only these users (empty: all). */
    private $userids;

    /** @var int[] Only these courses, for enrolments and completions (empty: all). */
    private $courseids;

    /** @var int Only rows modified (completions: completed) at or after this time; 0 for all. */
    private $since;

    /**
     * Makes a backfill.
     *
     * @param config $config The settings (site id, snapshot fields).
     * @param int[] $userids Only these users; empty for all.
     * @param int[] $courseids Only these courses; empty for all.
     * @param int $since Only rows changed since this Unix time; 0 for all.
     */
    public function __construct(config $config, array $userids = [], array $courseids = [], int $since = 0) {
        $this->config = $config;
        $this->builder = $config->builder();
        $this->userids = array_map('intval', $userids);
        $this->courseids = array_map('intval', $courseids);
        $this->since = $since;
    }

    /**
     * Returns the config name of a source's cursor; it depends on the filters, so another filter starts afresh.
     *
     * @param string $source A key of SOURCES.
     * @return string The config name.
     */
    public function cursor_name(string $source): string {
        $filters = json_encode([$this->userids, $this->courseids, $this->since]);
        return 'backfill_' . $source . '_' . substr(sha1($filters), 0, 12);
    }

    /**
     * Forgets a source's cursor, so the next run starts from the first row.
     *
     * @param string $source A key of SOURCES.
     * @return void
     */
    public function reset(string $source): void {
        unset_config($this->cursor_name($source), config::COMPONENT);
    }

    /**
     * Writes the next batch of a source to the outbox, with the cursor, in one transaction.
     *
     * @param string $source A key of SOURCES.
     * @param int $batchsize Rows per batch.
     * @return int How many events were written; 0 when the source is done.
     */
    public function next_batch(string $source, int $batchsize): int {
        global $DB;
        $cursorname = $this->cursor_name($source);
        $after = (int) get_config(config::COMPONENT, $cursorname);
        $records = $this->fetch($source, $after, $batchsize);
        if (!$records) {
            return 0;
        }
        $type = self::SOURCES[$source];
        $routingkey = event_types::routing_key($this->builder->get_site_id(), $type);
        $now = time();
        $rows = [];
        foreach ($records as $record) {
            [$eventdata, $snapshot] = $this->event($source, $record, $now);
            $envelope = $this->builder->build($eventdata, $snapshot, 0, null, true);
            $rows[] = [
                'eventid' => $envelope['id'],
                'eventtype' => $type,
                'routingkey' => $routingkey,
                'userid' => $envelope['data']['relateduserid'],
                'envelope' => json_encoder::encode($envelope),
                'timecreated' => $now,
                'attempts' => 0,
            ];
        }
        $transaction = $DB->start_delegated_transaction();
        $DB->insert_records('local_eventrelay_outbox', $rows);
        set_config($cursorname, (int) end($records)->id, config::COMPONENT);
        $transaction->allow_commit();
        return count($rows);
    }

    /**
     * Reads the next rows of a source after the cursor, ascending id, with what the events need.
     *
     * @param string $source A key of SOURCES.
     * @param int $after The cursor.
     * @param int $limit Rows at most.
     * @return \stdClass[] The records.
     */
    private function fetch(string $source, int $after, int $limit): array {
        global $DB, $CFG;
        $params = ['after' => $after];
        $where = [];
        switch ($source) {
            case 'users':
                $sql = 'SELECT u.*, ctx.id AS contextid FROM {user} u
                          JOIN {context} ctx ON ctx.instanceid = u.id AND ctx.contextlevel = :ctxlevel';
                $where[] = 'u.id > :after AND u.deleted = 0 AND u.id <> :guest';
                $params += ['ctxlevel' => CONTEXT_USER, 'guest' => (int) $CFG->siteguest];
                $userfield = 'u.id';
                $coursefield = null;
                $timefield = 'u.timemodified';
                $order = 'u.id';
                break;
            case 'enrolments':
                $sql = 'SELECT ue.*, e.courseid, e.enrol, ctx.id AS contextid FROM {user_enrolments} ue
                          JOIN {enrol} e ON e.id = ue.enrolid
                          JOIN {context} ctx ON ctx.instanceid = e.courseid AND ctx.contextlevel = :ctxlevel';
                $where[] = 'ue.id > :after';
                $params['ctxlevel'] = CONTEXT_COURSE;
                $userfield = 'ue.userid';
                $coursefield = 'e.courseid';
                $timefield = 'ue.timemodified';
                $order = 'ue.id';
                break;
            default:
                $sql = 'SELECT cc.*, cc.course AS courseid, ctx.id AS contextid FROM {course_completions} cc
                          JOIN {context} ctx ON ctx.instanceid = cc.course AND ctx.contextlevel = :ctxlevel';
                $where[] = 'cc.id > :after AND cc.timecompleted > 0';
                $params['ctxlevel'] = CONTEXT_COURSE;
                $userfield = 'cc.userid';
                $coursefield = 'cc.course';
                $timefield = 'cc.timecompleted';
                $order = 'cc.id';
        }
        if ($this->userids) {
            [$insql, $inparams] = $DB->get_in_or_equal($this->userids, SQL_PARAMS_NAMED, 'uid');
            $where[] = "{$userfield} {$insql}";
            $params += $inparams;
        }
        if ($this->courseids && $coursefield !== null) {
            [$insql, $inparams] = $DB->get_in_or_equal($this->courseids, SQL_PARAMS_NAMED, 'cid');
            $where[] = "{$coursefield} {$insql}";
            $params += $inparams;
        }
        if ($this->since > 0) {
            $where[] = "{$timefield} >= :since";
            $params['since'] = $this->since;
        }
        return array_values($DB->get_records_sql(
            $sql . ' WHERE ' . implode(' AND ', $where) . " ORDER BY {$order}",
            $params,
            0,
            $limit
        ));
    }

    /**
     * Makes the event data and snapshot of one record, shaped like the Moodle event of the same type.
     *
     * @param string $source A key of SOURCES.
     * @param \stdClass $record The record.
     * @param int $now The backfill time (the event's time).
     * @return array [event data, snapshot row]
     */
    private function event(string $source, \stdClass $record, int $now): array {
        $common = ['userid' => 0, 'anonymous' => 0, 'timecreated' => $now, 'contextid' => $record->contextid];
        $snapshot = (array) $record;
        unset($snapshot['contextid']);
        switch ($source) {
            case 'users':
                return [$common + [
                    'eventname' => '\\core\\event\\user_created', 'objectid' => $record->id, 'crud' => 'c',
                    'relateduserid' => $record->id, 'courseid' => 0, 'other' => null,
                    'contextlevel' => CONTEXT_USER, 'contextinstanceid' => $record->id,
                ], $snapshot];
            case 'enrolments':
                return [$common + [
                    'eventname' => '\\core\\event\\user_enrolment_created', 'objectid' => $record->id, 'crud' => 'c',
                    'relateduserid' => $record->userid, 'courseid' => $record->courseid,
                    'other' => ['enrol' => $record->enrol],
                    'contextlevel' => CONTEXT_COURSE, 'contextinstanceid' => $record->courseid,
                ], $snapshot];
            default:
                return [$common + [
                    'eventname' => '\\core\\event\\course_completed', 'objectid' => $record->id, 'crud' => 'u',
                    'relateduserid' => $record->userid, 'courseid' => $record->courseid,
                    'other' => ['relateduserid' => $record->userid],
                    'contextlevel' => CONTEXT_COURSE, 'contextinstanceid' => $record->courseid,
                ], $snapshot];
        }
    }
}
