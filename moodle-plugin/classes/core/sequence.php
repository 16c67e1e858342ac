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
 * The event's per-site `sequence`: the outbox row id as a zero-padded decimal string, set in an envelope
 * once the row id is known.
 *
 * @package    local_eventrelay
 * @copyright  2026 Moodle Event Relay contributors
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */
class sequence {
    /** @var int Number of digits of the zero-padded `sequence`. */
    public const DIGITS = 20;

    /**
     * Formats a sequence number as the contract's `sequence`: a decimal string zero-padded to 20 digits.
     *
     * @param int $sequence The number, e.g. an outbox row id; 0 or more.
     * @return string E.g. "00000000000000000042".
     * @throws \InvalidArgumentException When the number is negative.
     */
    public static function format(int $sequence): string {
        if ($sequence < 0) {
            throw new \InvalidArgumentException("Invalid sequence {$sequence}: it must not be negative");
        }
        return str_pad((string) $sequence, self::DIGITS, '0', STR_PAD_LEFT);
    }

    /**
     * Returns a built envelope with its `sequence` set or replaced (the plugin learns it only after the
     * outbox insert). Nothing else changes; the id in particular stays.
     *
     * @param array $envelope An envelope made by {@see envelope_builder::build()}.
     * @param int $sequence The number, 0 or more.
     * @return array The envelope with the new sequence, in the same place among the attributes.
     * @throws \InvalidArgumentException When the number is negative or the array is not an envelope.
     */
    public static function with_sequence(array $envelope, int $sequence): array {
        if (!array_key_exists('sequence', $envelope) || !array_key_exists('id', $envelope)) {
            throw new \InvalidArgumentException('Not an event envelope: it has no id or sequence');
        }
        $envelope['sequence'] = self::format($sequence);
        return $envelope;
    }
}
