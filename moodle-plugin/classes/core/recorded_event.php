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
 * An event as the observer records it in the outbox: the facts, not the envelope yet.
 *
 * Inside a Moodle request the observer keeps only what cannot be known later: the event's data and the
 * entity's row as it was, cut down to the fields its snapshot may carry (no password hash, no field the
 * admin left out). Casting, checking and shaping them into the CloudEvent happen in the drain
 * ({@see outbox_row::body()}), outside any request, with {@see envelope_builder::build()} and the event id
 * chosen at record time, so the message is the same as if it had been built at once.
 *
 * Rows written before this format, the backfill's rows and spooled rows of either kind hold a whole
 * envelope; {@see recorded_event::is_recorded()} tells the two apart.
 *
 * @package    local_eventrelay
 * @copyright  2026 Moodle Event Relay contributors
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */
class recorded_event {
    /** @var string How the stored JSON starts: its first key marks the format. */
    public const PREFIX = '{"recorded":1,';

    /** @var array[] "kind user-fields" => [field => true] that a snapshot of that kind may keep. */
    private static $keep = [];

    /**
     * Encodes what the observer records of an event.
     *
     * @param string $type CloudEvent type of the event.
     * @param array $eventdata What `$event->get_data()` returns.
     * @param array|object $snapshot The entity's row as it was.
     * @param string[] $userfields The user fields user snapshots may carry ("id" is always kept).
     * @return string The JSON to store.
     * @throws \InvalidArgumentException When the type is unknown.
     * @throws \JsonException When the data cannot be encoded (e.g. invalid UTF-8).
     */
    public static function encode(string $type, array $eventdata, array|object $snapshot, array $userfields): string {
        $kind = snapshot::kind_for_type($type);
        $key = $kind === snapshot::KIND_USER ? $kind . ' ' . implode(',', $userfields) : $kind;
        if (!isset(self::$keep[$key])) {
            $fields = array_keys(snapshot::FIELDS[$kind]);
            if ($kind === snapshot::KIND_USER) {
                $fields = array_intersect($fields, array_merge(snapshot::REQUIRED[$kind], $userfields));
            }
            self::$keep[$key] = array_fill_keys($fields, true);
        }
        $row = is_object($snapshot) ? get_object_vars($snapshot) : $snapshot;
        return json_encode(
            ['recorded' => 1, 'event' => $eventdata, 'snapshot' => array_intersect_key($row, self::$keep[$key])],
            json_encoder::FLAGS
        );
    }

    /**
     * Tells whether stored JSON is a recorded event rather than a whole envelope.
     *
     * @param string $json The outbox row's stored JSON.
     * @return bool True for a recorded event.
     */
    public static function is_recorded(string $json): bool {
        return str_starts_with($json, self::PREFIX);
    }

    /**
     * Builds the envelope of a recorded event.
     *
     * @param string $json What {@see recorded_event::encode()} returned.
     * @param envelope_builder $builder The builder of the event's site.
     * @param int $sequence The event's sequence (its outbox row id).
     * @param string $id The event id chosen when it was recorded.
     * @return array The envelope.
     * @throws \JsonException When the JSON is broken.
     * @throws \InvalidArgumentException When it is not a recorded event or the builder refuses its facts.
     */
    public static function envelope(string $json, envelope_builder $builder, int $sequence, string $id): array {
        $recorded = json_decode($json, true, 512, JSON_THROW_ON_ERROR);
        if (!is_array($recorded) || !is_array($recorded['event'] ?? null) || !is_array($recorded['snapshot'] ?? null)) {
            throw new \InvalidArgumentException('Not a recorded event: it has no event data or snapshot');
        }
        return $builder->build($recorded['event'], $recorded['snapshot'], $sequence, $id);
    }
}
