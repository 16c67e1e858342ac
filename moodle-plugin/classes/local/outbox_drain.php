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

use local_eventrelay\core\drain_result;
use local_eventrelay\core\drainer;
use local_eventrelay\core\publish_exception;
use local_eventrelay\core\publisher;

/**
 * Runs a drain of Moodle's outbox under Moodle's lock, so that two drains never publish the same row.
 *
 * It first moves the spool (rows the outbox insert could not take) back into the outbox, then publishes.
 * Used by both tasks and cli/drain.php (the follower, {@see follower}, runs the same two steps per pass).
 * The lock is a Moodle lock (no database row lock and no transaction): the network calls happen while it is
 * held, which is what it is for.
 *
 * @package    local_eventrelay
 * @copyright  2026 Moodle Event Relay contributors
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */
class outbox_drain {
    /** @var string Name of the lock, in the plugin's lock type. */
    public const LOCK_RESOURCE = 'drain';

    /**
     * Drains the outbox if no other drain is running.
     *
     * @param int $locktimeout Seconds to wait for a drain that is running to finish.
     * @param float $deadline Unix time after which no new batch starts; 0 for none.
     * @param callable|null $progress Receives a line of text per batch.
     * @return drain_result|null What was done, or null when another drain holds the lock.
     * @throws publish_exception When the broker is not configured.
     */
    public static function run(int $locktimeout = 5, float $deadline = 0.0, ?callable $progress = null): ?drain_result {
        $config = config::load();
        if (!$config->has_broker()) {
            throw new publish_exception('The broker is not configured (setting local_eventrelay/host is empty).');
        }
        $factory = \core\lock\lock_config::get_lock_factory(config::COMPONENT);
        $lock = $factory->get_lock(self::LOCK_RESOURCE, $locktimeout);
        if (!$lock) {
            return null;
        }
        $publisher = new publisher($config->connection(), [$config, 'builder_for_site']);
        try {
            spool_store::instance()->move_to_outbox($progress);
            $drainer = new drainer(new db_outbox_store(), $publisher, $config->batch_size(), $progress);
            return $drainer->drain(0, $deadline);
        } finally {
            $publisher->close();
            $lock->release();
        }
    }
}
