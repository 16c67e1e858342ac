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

use local_eventrelay\core\event_types;
use local_eventrelay\core\recorded_event;
use local_eventrelay\core\uuid;
use local_eventrelay\local\config;
use local_eventrelay\local\outbox_writer;
use local_eventrelay\local\snapshot_reader;

/**
 * Turns each relayed event into one outbox row; no network I/O, and never a broken request.
 *
 * {@see observer::relay()} is registered 'internal' (it runs at once, inside the transaction of the change, if
 * any) and hands the row to {@see outbox_writer}, which inserts it inside a transaction and buffers it
 * outside one. {@see observer::committed()} is registered for the same events with 'internal' => false:
 * Moodle runs it only once the change has committed, which is how the writer learns that a row it could not
 * insert inside a transaction must not be dropped.
 *
 * Cost per event: the snapshot reads Moodle has not already attached to the event, encoding the event's data
 * and snapshot ({@see recorded_event}), and a share of one multi-row insert (outside transactions) or one
 * insert (inside one). Everything that can wait (casting, checking, the CloudEvent itself) is done by the
 * drain, outside the request.
 *
 * The row id is the event's sequence. It is known only after the insert; the drain builds the envelope with
 * it (one insert, no update).
 *
 * @package    local_eventrelay
 * @copyright  2026 Moodle Event Relay contributors
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */
class observer {
    /**
     * Records an event in the outbox.
     *
     * @param \core\event\base $event One of the twelve relayed events.
     * @return void
     */
    public static function relay(\core\event\base $event): void {
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
            $data = $event->get_data();
            outbox_writer::instance()->write($event, (object) [
                'eventid' => uuid::v4(),
                'eventtype' => $type,
                'routingkey' => event_types::routing_key($builder->get_site_id(), $type),
                'userid' => self::user_of($data),
                'envelope' => recorded_event::encode(
                    $type,
                    $data,
                    snapshot_reader::read($type, $event),
                    $builder->get_user_fields()
                ),
                'timecreated' => time(),
            ]);
        } catch (\Throwable $e) {
            // The snapshot could not be read or the data encoded (the writer itself never throws): report it, let
            // the request go on.
            debugging('local_eventrelay could not record ' . get_class($event) . ': ' . $e->getMessage(), DEBUG_NORMAL);
        }
    }

    /**
     * Returns the user an event is about, for the privacy API: its related user, else its object.
     *
     * @param array $data The event's data.
     * @return int|null The user id; null when the event names none.
     */
    private static function user_of(array $data): ?int {
        $userid = $data['relateduserid'] ?? $data['objectid'] ?? null;
        return $userid === null ? null : (int) $userid;
    }

    /**
     * Learns that the change of a relayed event has committed (registered with 'internal' => false).
     *
     * @param \core\event\base $event The event.
     * @return void
     */
    public static function committed(\core\event\base $event): void {
        try {
            outbox_writer::instance()->committed($event);
        } catch (\Throwable $e) {
            debugging('local_eventrelay after commit of ' . get_class($event) . ': ' . $e->getMessage(), DEBUG_NORMAL);
        }
    }

    /**
     * Forgets the request's buffered rows (PHPUnit resets the database between tests).
     *
     * @return void
     */
    public static function reset_for_tests(): void {
        outbox_writer::reset_for_tests();
    }
}
