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

use local_eventrelay\task\drain_outbox;

/**
 * Tells the drain that rows are waiting, as cheaply as possible: one read of Moodle's application cache.
 *
 * - When the follower (`cli/drain.php --follow`) is alive it polls the outbox itself: nothing to do.
 * - When a drain task is queued and has not started yet it will read the new rows: nothing to do.
 * - Otherwise the drain adhoc task is queued (deduplicated by Moodle) and the cache remembers it.
 *
 * The cache is only a shortcut: if it is purged, the worst case is one more queue_adhoc_task() call, and the
 * every-minute fallback task drains whatever a lost signal left behind.
 *
 * @package    local_eventrelay
 * @copyright  2026 Moodle Event Relay contributors
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */
class drain_signal {
    /** @var int Seconds after its last heartbeat that a follower counts as alive. */
    public const FOLLOWER_TIMEOUT = 10;

    /** @var int Seconds a queued drain task is trusted to start; after that it is queued again. */
    public const QUEUED_TIMEOUT = 300;

    /**
     * Makes sure a drain will read the outbox soon.
     *
     * @return void
     */
    public static function poke(): void {
        try {
            $cache = self::cache();
            $state = $cache->get_many(['follower', 'queued']);
            $now = time();
            if (
                self::fresh($state['follower'], $now, self::FOLLOWER_TIMEOUT)
                    || self::fresh($state['queued'], $now, self::QUEUED_TIMEOUT)
            ) {
                return;
            }
            \core\task\manager::queue_adhoc_task(new drain_outbox(), true);
            $cache->set('queued', $now);
        } catch (\Throwable $e) {
            // The rows are in the outbox: the fallback task drains them within a minute.
            debugging('local_eventrelay could not queue the drain: ' . $e->getMessage(), DEBUG_DEVELOPER);
        }
    }

    /**
     * Records that the drain task started: rows written from now on need a new signal.
     *
     * @return void
     */
    public static function task_started(): void {
        self::cache()->delete('queued');
    }

    /**
     * Records that the follower is alive (called on every poll, written at most once a second).
     *
     * @return void
     */
    public static function follower_heartbeat(): void {
        static $last = 0;
        $now = time();
        if ($now !== $last) {
            self::cache()->set('follower', $now);
            $last = $now;
        }
    }

    /**
     * Records that the follower stopped, so that requests queue drain tasks again at once.
     *
     * @return void
     */
    public static function follower_stopped(): void {
        self::cache()->delete('follower');
    }

    /**
     * Tells whether a follower is alive.
     *
     * @return bool True when a follower's heartbeat is recent.
     */
    public static function follower_alive(): bool {
        return self::fresh(self::cache()->get('follower'), time(), self::FOLLOWER_TIMEOUT);
    }

    /**
     * Tells whether a recorded time is recent.
     *
     * @param int|false $time The time, or false when none is recorded.
     * @param int $now Now.
     * @param int $timeout Seconds it stays recent.
     * @return bool True when recorded less than $timeout seconds ago.
     */
    private static function fresh($time, int $now, int $timeout): bool {
        return $time !== false && $now - (int) $time < $timeout;
    }

    /**
     * Returns the plugin's application cache `drain` (db/caches.php).
     *
     * @return \cache_application The cache.
     */
    private static function cache(): \cache_application {
        return \cache::make(config::COMPONENT, 'drain');
    }
}
