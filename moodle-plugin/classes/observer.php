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

namespace local_eventrelay;

use local_eventrelay\local\config;
use local_eventrelay\local\envelope_builder;
use local_eventrelay\local\event_types;
use local_eventrelay\local\snapshot_reader;

/**
 * Writes one outbox row per relayed event, inside the transaction of the change (registered 'internal').
 *
 * No network I/O here: the row is published later by the drain task. Cost per event: the snapshot reads
 * Moodle has not already attached to the event, and one insert; once per request, the deduplicated
 * drain task is queued. Any failure is caught: relaying must never break the user's request.
 *
 * The row id is the event's sequence. It is known only after the insert, so the envelope is stored with
 * sequence 0 and the drain sets the sequence to the row id when it publishes (one insert, no update).
 *
 * @package    local_eventrelay
 * @copyright  2026 Moodle Event Relay contributors
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */
class observer {
    /** @var bool Whether this request has queued the drain task already. */
    private static $drainqueued = false;

    /**
     * Records an event in the outbox.
     *
     * @param \core\event\base $event One of the twelve relayed events.
     * @return void
     */
    public static function relay(\core\event\base $event): void {
        global $DB;
        try {
            $type = event_types::type_for_class(get_class($event));
            if ($type === null) {
                return;
            }
            $config = config::load();
            if (!$config->relays($type)) {
                return;
            }
            $builder = $config->builder();
            $envelope = $builder->build($event->get_data(), snapshot_reader::read($type, $event));
            $DB->insert_record('local_eventrelay_outbox', (object) [
                'eventid' => $envelope['id'],
                'eventtype' => $type,
                'routingkey' => event_types::routing_key($builder->get_site_id(), $type),
                'userid' => $envelope['data']['relateduserid'] ?? $envelope['data']['objectid'],
                'envelope' => envelope_builder::to_json($envelope),
                'timecreated' => time(),
                'attempts' => 0,
            ], false);
            self::queue_drain();
        } catch (\Throwable $e) {
            // An event that cannot be recorded is lost: say so, but let the request go on.
            debugging('local_eventrelay could not record ' . get_class($event) . ': ' . $e->getMessage(), DEBUG_NORMAL);
        }
    }

    /**
     * Queues the drain adhoc task, once per request (Moodle also deduplicates it on its class).
     *
     * @return void
     */
    private static function queue_drain(): void {
        if (self::$drainqueued) {
            return;
        }
        \core\task\manager::queue_adhoc_task(new task\drain_outbox(), true);
        self::$drainqueued = true;
    }

    /**
     * Forgets that the drain task was queued (PHPUnit resets the task table between tests).
     *
     * @return void
     */
    public static function reset_for_tests(): void {
        self::$drainqueued = false;
    }
}
