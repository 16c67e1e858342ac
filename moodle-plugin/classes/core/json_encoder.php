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
 * JSON text of the relay: an envelope as the message body, and a value quoted for an error message.
 *
 * @package    local_eventrelay
 * @copyright  2026 Moodle Event Relay contributors
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */
class json_encoder {
    /** @var int JSON encoding flags of a message body ({@see json_encoder::encode()}, {@see outbox_row::body()}). */
    public const FLAGS = JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE | JSON_THROW_ON_ERROR;

    /**
     * Encodes an envelope as the JSON body of the message: slashes and Unicode unescaped.
     *
     * @param array $envelope An envelope made by {@see envelope_builder::build()}.
     * @return string The JSON text, on one line.
     * @throws \JsonException When the envelope cannot be encoded (e.g. invalid UTF-8).
     */
    public static function encode(array $envelope): string {
        return json_encode($envelope, self::FLAGS);
    }

    /**
     * Quotes a value for an error message, escaping control characters.
     *
     * @param string $value The value.
     * @return string The value in double quotes, JSON-escaped.
     */
    public static function quote(string $value): string {
        $json = json_encode($value, JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE | JSON_INVALID_UTF8_SUBSTITUTE);
        return $json === false ? '"?"' : $json;
    }
}
