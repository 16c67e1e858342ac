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
 * One outbox row: an observed event waiting to be published.
 *
 * The row id is the event's per-site `sequence`, known only after the insert. The row holds either what the
 * observer recorded of the event ({@see recorded_event}) or a whole envelope with sequence 0 (the backfill,
 * rows of earlier versions); {@see outbox_row::body()} gives the message body with the sequence set.
 *
 * @package    local_eventrelay
 * @copyright  2026 Moodle Event Relay contributors
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */
class outbox_row {
    /** @var int Row id, the event's sequence. */
    public $id;

    /** @var string Event id (UUID), the AMQP message_id. */
    public $eventid;

    /** @var string CloudEvent type, e.g. "moodle.user.created". */
    public $eventtype;

    /** @var string Routing key, e.g. "lms-prod.user.created". */
    public $routingkey;

    /** @var string The recorded event, or the whole envelope, as JSON. */
    public $envelope;

    /** @var int Failed publish attempts so far. */
    public $attempts;

    /**
     * Makes a row.
     *
     * @param int $id Row id (sequence).
     * @param string $eventid Event id.
     * @param string $eventtype CloudEvent type.
     * @param string $routingkey Routing key.
     * @param string $envelope The recorded event or envelope, as JSON.
     * @param int $attempts Failed attempts so far.
     */
    public function __construct(
        int $id,
        string $eventid,
        string $eventtype,
        string $routingkey,
        string $envelope,
        int $attempts = 0
    ) {
        $this->id = $id;
        $this->eventid = $eventid;
        $this->eventtype = $eventtype;
        $this->routingkey = $routingkey;
        $this->envelope = $envelope;
        $this->attempts = $attempts;
    }

    /**
     * Makes a row from a database record (numeric strings accepted).
     *
     * @param object|array $record A record with id, eventid, eventtype, routingkey, envelope and attempts.
     * @return self The row.
     */
    public static function from_record($record): self {
        $record = (object) $record;
        return new self(
            (int) $record->id,
            (string) $record->eventid,
            (string) $record->eventtype,
            (string) $record->routingkey,
            (string) $record->envelope,
            (int) ($record->attempts ?? 0)
        );
    }

    /**
     * Returns the message body: the event's envelope with `sequence` set to the row id.
     *
     * A recorded event ({@see recorded_event}) is built now, with the builder of the site its routing key names.
     * A stored envelope is decoded to objects and encoded again with {@see json_encoder::FLAGS}, so empty
     * objects stay objects and every other attribute, key order included, is exactly what was observed.
     *
     * @param callable|null $builderfor Gives the {@see envelope_builder} of a site id; needed for recorded events.
     * @return string The JSON body.
     * @throws \JsonException When the stored JSON is broken.
     * @throws \UnexpectedValueException When it is neither an envelope nor a recorded event, or no builder is given.
     * @throws \InvalidArgumentException When the builder refuses a recorded event's facts.
     */
    public function body(?callable $builderfor = null): string {
        if (recorded_event::is_recorded($this->envelope)) {
            if ($builderfor === null) {
                throw new \UnexpectedValueException("Outbox row {$this->id} holds a recorded event and no builder was given");
            }
            $siteid = strstr($this->routingkey, '.', true);
            $envelope = recorded_event::envelope($this->envelope, $builderfor($siteid), $this->id, $this->eventid);
            return json_encoder::encode($envelope);
        }
        $envelope = json_decode($this->envelope, false, 512, JSON_THROW_ON_ERROR);
        if (!is_object($envelope) || !property_exists($envelope, 'sequence') || !property_exists($envelope, 'id')) {
            throw new \UnexpectedValueException("Outbox row {$this->id} does not hold an event envelope");
        }
        $envelope->sequence = sequence::format($this->id);
        return json_encode($envelope, json_encoder::FLAGS);
    }
}
