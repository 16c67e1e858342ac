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

/**
 * The user row after user_update_user(), known without reading it again: the row Moodle read before the
 * update (hook before_user_updated) with the changes written over it, exactly as user_update_user() does.
 *
 * This saves the one database read a user_updated event would otherwise cost the observer: that event
 * carries no record snapshot. It is used only when the event is being triggered by the very
 * user_update_user() call that dispatched the hook (checked on the call stack); any other user_updated event
 * (the code may have changed the row directly, e.g. the picture) reads the row as before.
 *
 * user_update_user() compares each given field strictly with the current one, writes the ones that differ,
 * and then sets timemodified to time(): the same time() here, in the same second but for an update that
 * straddles a second boundary.
 *
 * @package    local_eventrelay
 * @copyright  2026 Moodle Event Relay contributors
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */
class user_update_snapshot {
    /** @var \stdClass|null The user object given to user_update_user() (cleaned in place by it). */
    private static $changes = null;

    /** @var \stdClass|null The row as it was before that update. */
    private static $before = null;

    /**
     * Hook callback (db/hooks.php): remembers the update under way.
     *
     * @param \core_user\hook\before_user_updated $hook The hook.
     * @return void
     */
    public static function before_user_updated(\core_user\hook\before_user_updated $hook): void {
        self::$changes = $hook->user;
        self::$before = $hook->currentuserdata;
    }

    /**
     * Returns the row after the update, if the user_updated event of this user comes from that update.
     *
     * @param int $userid The event's user.
     * @return array|null The row, or null when it must be read from the database.
     */
    public static function take(int $userid): ?array {
        $changes = self::$changes;
        $before = self::$before;
        self::$changes = null;
        self::$before = null;
        if ($changes === null || (int) ($before->id ?? 0) !== $userid || !self::inside_user_update_user()) {
            return null;
        }
        $row = (array) $before;
        $changed = false;
        foreach ((array) $changes as $field => $value) {
            if (!array_key_exists($field, $row) || $field === 'timemodified') {
                continue;
            }
            if ($row[$field] !== $value) {
                $row[$field] = $value;
                $changed = true;
            }
        }
        if ($changed) {
            $row['timemodified'] = time();
        }
        return $row;
    }

    /**
     * Tells whether user_update_user() is on the call stack (the event is triggered at its end).
     *
     * @return bool True when it is.
     */
    private static function inside_user_update_user(): bool {
        foreach (debug_backtrace(DEBUG_BACKTRACE_IGNORE_ARGS, 12) as $frame) {
            if ($frame['function'] === 'user_update_user' && !isset($frame['class'])) {
                return true;
            }
        }
        return false;
    }
}
