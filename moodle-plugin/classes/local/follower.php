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
use local_eventrelay\core\publisher;

/**
 * The long-running drain behind `cli/drain.php --follow`: publishes new outbox rows within a fraction of a
 * second of their commit, without adding anything to Moodle's requests.
 *
 * - One follower per site: it holds Moodle's lock `local_eventrelay/follow` for its whole life; a second
 *   one exits at once. Each pass also takes the drain lock, so a pass never overlaps a drain task.
 * - It polls the outbox with an indexed query: right after rows were published it looks again after
 *   {@see follower::IDLE_MIN} seconds, and each empty poll doubles the wait up to the idle maximum (0.5 s
 *   unless set). A broker failure waits 1 s, doubling up to {@see follower::ERROR_MAX}.
 * - A row the broker refused is retried after {@see follower::RETRY_DELAY} seconds, not on every poll.
 * - It keeps one broker connection open, checked after a quiet minute, and a heartbeat in Moodle's cache
 *   ({@see drain_signal}) so that requests stop queueing drain tasks while it runs.
 * - SIGTERM or SIGINT end it after the pass under way (systemd's stop), as does --max-seconds.
 *
 * @package    local_eventrelay
 * @copyright  2026 Moodle Event Relay contributors
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */
class follower {
    /** @var string Name of the lock held while following. */
    public const LOCK_RESOURCE = 'follow';

    /** @var float Seconds between polls right after work. */
    public const IDLE_MIN = 0.05;

    /** @var float Default longest wait between polls when idle. */
    public const DEFAULT_IDLE_MAX = 0.5;

    /** @var float Longest wait after a broker failure. */
    public const ERROR_MAX = 30.0;

    /** @var int Seconds before a row the broker refused is tried again. */
    public const RETRY_DELAY = 10;

    /** @var int Seconds without a publish after which the connection is checked before use. */
    public const PING_AFTER = 60;

    /** @var config The settings. */
    private $config;

    /** @var float Longest wait between polls when idle. */
    private $idlemax;

    /** @var callable|null Receives lines of progress. */
    private $progress;

    /** @var bool Whether every batch is reported, not only failures and spool moves. */
    private $verbose;

    /** @var bool Set by SIGTERM or SIGINT. */
    private $stopping = false;

    /**
     * Makes a follower.
     *
     * @param config $config The settings (broker, batch size).
     * @param float $idlemax Longest wait between polls when idle, in seconds (0.05 to 60).
     * @param callable|null $progress Receives a line of text on failures and spool moves.
     * @param bool $verbose Whether $progress also receives a line per batch.
     */
    public function __construct(
        config $config,
        float $idlemax = self::DEFAULT_IDLE_MAX,
        ?callable $progress = null,
        bool $verbose = false
    ) {
        $this->config = $config;
        $this->idlemax = max(self::IDLE_MIN, min(60.0, $idlemax));
        $this->progress = $progress;
        $this->verbose = $verbose;
    }

    /**
     * Follows the outbox until stopped.
     *
     * @param float $maxseconds Stop after this long; 0 for never.
     * @return drain_result|null What was done in all, or null when another follower holds the lock.
     * @throws \local_eventrelay\core\publish_exception When the broker is not configured.
     */
    public function run(float $maxseconds = 0.0): ?drain_result {
        if (!$this->config->has_broker()) {
            throw new \local_eventrelay\core\publish_exception(
                'The broker is not configured (setting local_eventrelay/host is empty).'
            );
        }
        $factory = \core\lock\lock_config::get_lock_factory(config::COMPONENT);
        $lock = $factory->get_lock(self::LOCK_RESOURCE, 0);
        if (!$lock) {
            return null;
        }
        $this->catch_signals();
        $publisher = new publisher($this->config->connection(), [$this->config, 'builder_for_site']);
        $drainer = new drainer(
            new db_outbox_store(self::RETRY_DELAY),
            $publisher,
            $this->config->batch_size(),
            $this->verbose ? $this->progress : null
        );
        $spool = spool_store::instance();
        $total = new drain_result();
        $until = $maxseconds > 0 ? microtime(true) + $maxseconds : INF;
        $wait = self::IDLE_MIN;
        $lastpublish = microtime(true);
        try {
            while (!$this->stopping && microtime(true) < $until) {
                drain_signal::follower_heartbeat();
                if (microtime(true) - $lastpublish > self::PING_AFTER) {
                    $this->check_connection($publisher);
                    $lastpublish = microtime(true);
                }
                $pass = $this->pass($factory, $drainer, $spool);
                if ($pass !== null) {
                    $total->add($pass);
                    if ($pass->failed > 0) {
                        $this->report('pass: ' . $pass->summary());
                    }
                    if ($pass->published > 0) {
                        $lastpublish = microtime(true);
                    }
                }
                $wait = $this->next_wait($pass, $wait);
                $this->sleep(min($wait, max(0.0, $until - microtime(true))));
            }
        } finally {
            $publisher->close();
            drain_signal::follower_stopped();
            $lock->release();
        }
        return $total;
    }

    /**
     * Runs one pass under the drain lock: moves the spool into the outbox, then drains it.
     *
     * @param \core\lock\lock_factory $factory Moodle's lock factory.
     * @param drainer $drainer The drainer.
     * @param spool_store $spool The spool.
     * @return drain_result|null What was done, or null when a drain task held the lock.
     */
    private function pass(\core\lock\lock_factory $factory, drainer $drainer, spool_store $spool): ?drain_result {
        $lock = $factory->get_lock(outbox_drain::LOCK_RESOURCE, 0);
        if (!$lock) {
            return null;
        }
        try {
            $spool->move_to_outbox($this->progress);
            return $drainer->drain();
        } finally {
            $lock->release();
        }
    }

    /**
     * Passes a line of progress to the callback, if any.
     *
     * @param string $line The text.
     * @return void
     */
    private function report(string $line): void {
        if ($this->progress !== null) {
            ($this->progress)($line);
        }
    }

    /**
     * Chooses the wait before the next poll.
     *
     * @param drain_result|null $pass The pass just done (null when it did not run).
     * @param float $wait The wait before it.
     * @return float Seconds.
     */
    private function next_wait(?drain_result $pass, float $wait): float {
        if ($pass !== null && $pass->stopreason === 'broker') {
            return min(self::ERROR_MAX, max(1.0, $wait * 2));
        }
        if ($pass !== null && $pass->published > 0) {
            return self::IDLE_MIN;
        }
        return min($this->idlemax, max(self::IDLE_MIN, $wait * 2));
    }

    /**
     * Checks a connection that has been quiet for a while, so that a broker restart meanwhile costs a
     * reconnect rather than a failed batch.
     *
     * @param publisher $publisher The publisher.
     * @return void
     */
    private function check_connection(publisher $publisher): void {
        try {
            $publisher->ping();
        } catch (\Throwable $e) {
            // The next pass connects again; the ping's error is not any row's.
            $publisher->close();
        }
    }

    /**
     * Makes SIGTERM and SIGINT end the loop after the pass under way, where PHP can catch signals.
     *
     * @return void
     */
    private function catch_signals(): void {
        if (!function_exists('pcntl_signal')) {
            return;
        }
        pcntl_async_signals(true);
        $stop = function (): void {
            $this->stopping = true;
        };
        pcntl_signal(SIGTERM, $stop);
        pcntl_signal(SIGINT, $stop);
    }

    /**
     * Sleeps, waking early when a signal arrives, and keeps the heartbeat fresh through a long wait (after
     * broker errors), so that requests do not start queueing drain tasks meanwhile.
     *
     * @param float $seconds How long.
     * @return void
     */
    private function sleep(float $seconds): void {
        $until = microtime(true) + $seconds;
        while (!$this->stopping && ($left = $until - microtime(true)) > 0) {
            usleep((int) (min($left, 1.0) * 1000000));
            drain_signal::follower_heartbeat();
        }
    }
}
