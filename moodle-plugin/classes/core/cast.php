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
 * The casts of the event contract: a value as Moodle's DB layer or event data holds it (often a numeric
 * string) to the schema's int, string or bool, refusing anything whose meaning would change.
 *
 * Shared by the snapshots ({@see snapshot}), the event fields ({@see envelope_builder}) and `data.other`
 * ({@see other_caster}).
 *
 * @package    local_eventrelay
 * @copyright  2026 Moodle Event Relay contributors
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */
class cast {
    /** @var string Cast to an integer. */
    public const INT = 'int';

    /** @var string Cast to an integer, null allowed. */
    public const NULLABLE_INT = '?int';

    /** @var string Cast to a string. */
    public const STRING = 'string';

    /** @var string Cast to a boolean (Moodle stores 0/1). */
    public const BOOL = 'bool';

    /**
     * Casts one value as the schema demands.
     *
     * Integers are accepted as ints, integral floats, booleans and decimal strings (as Moodle's DB layer
     * returns them); booleans as bools and 0/1 in any of those forms; strings as strings and numbers.
     *
     * @param mixed $value The value.
     * @param string $cast One of the constants of this class.
     * @param string $name Where the value is, for the error message, e.g. "snapshot.id".
     * @return int|string|bool|null The cast value.
     * @throws \InvalidArgumentException When the value cannot be cast without losing meaning.
     */
    public static function apply($value, string $cast, string $name) {
        switch ($cast) {
            case self::NULLABLE_INT:
                return $value === null ? null : self::to_int($value, $name);
            case self::INT:
                return self::to_int($value, $name);
            case self::BOOL:
                return self::to_bool($value, $name);
            case self::STRING:
                return self::to_string($value, $name);
        }
        throw new \InvalidArgumentException("Unknown cast '{$cast}' for {$name}");
    }

    /**
     * Casts a value to an integer, refusing anything that is not an integer in disguise.
     *
     * @param mixed $value An int, an integral float, a bool or a decimal string such as "42" or "-1".
     * @param string $name Where the value is, for the error message.
     * @return int The integer.
     * @throws \InvalidArgumentException When the value is not an integer (e.g. "abc", "1.5", null, an array).
     */
    public static function to_int($value, string $name): int {
        if (is_int($value)) {
            return $value;
        }
        if (is_bool($value)) {
            return $value ? 1 : 0;
        }
        if (is_float($value) && is_finite($value) && floor($value) === $value && abs($value) < 9.0E15) {
            return (int) $value;
        }
        if (is_string($value) && $value === (string) (int) $value) {
            // The canonical form the database returns: no regular expression needed.
            return (int) $value;
        }
        if (is_string($value) && preg_match('/^-?[0-9]+$/D', $value) === 1) {
            $int = filter_var(self::strip_leading_zeros($value), FILTER_VALIDATE_INT);
            if ($int !== false) {
                return $int;
            }
        }
        throw new \InvalidArgumentException("{$name} must be an integer, got " . self::describe($value));
    }

    /**
     * Casts a value to a boolean: true, false, 1, 0, "1", "0" (and "" for false, as PHP writes false).
     *
     * @param mixed $value The value.
     * @param string $name Where the value is, for the error message.
     * @return bool The boolean.
     * @throws \InvalidArgumentException When the value is not one of the accepted forms.
     */
    public static function to_bool($value, string $name): bool {
        if (is_bool($value)) {
            return $value;
        }
        if ($value === 1 || $value === '1') {
            return true;
        }
        if ($value === 0 || $value === '0' || $value === '') {
            return false;
        }
        throw new \InvalidArgumentException("{$name} must be a boolean (0 or 1), got " . self::describe($value));
    }

    /**
     * Casts a value to a string: strings as they are, ints and floats in their decimal form.
     *
     * @param mixed $value The value.
     * @param string $name Where the value is, for the error message.
     * @return string The string.
     * @throws \InvalidArgumentException When the value is a bool, null, an array or an object.
     */
    public static function to_string($value, string $name): string {
        if (is_string($value)) {
            return $value;
        }
        if (is_int($value) || is_float($value)) {
            return (string) $value;
        }
        throw new \InvalidArgumentException("{$name} must be a string, got " . self::describe($value));
    }

    /**
     * Removes leading zeros from a decimal string so that filter_var() reads it as decimal.
     *
     * @param string $value A string matching /^-?[0-9]+$/.
     * @return string The same number without leading zeros, "0" for zero.
     */
    private static function strip_leading_zeros(string $value): string {
        $negative = $value[0] === '-';
        $digits = ltrim($negative ? substr($value, 1) : $value, '0');
        if ($digits === '') {
            return '0';
        }
        return ($negative ? '-' : '') . $digits;
    }

    /**
     * Describes a value briefly for an error message.
     *
     * @param mixed $value The value.
     * @return string E.g. "string 'abc'", "NULL", "array".
     */
    private static function describe($value): string {
        if (is_string($value)) {
            return "string '" . (strlen($value) > 40 ? substr($value, 0, 40) . '...' : $value) . "'";
        }
        if (is_scalar($value)) {
            return gettype($value) . ' ' . var_export($value, true);
        }
        return gettype($value);
    }
}
