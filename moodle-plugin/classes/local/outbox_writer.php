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
 * Writes outbox rows as cheaply as the change allows, and never loses one without a trace.
 *
 * - Inside a database transaction the row is inserted at once, so that it commits or rolls back with the
 *   change. If that insert fails, the row is held until Moodle reports the commit ({@see observer::committed()},
 *   an observer Moodle runs only after the outermost commit), then buffered; on rollback it is dropped with
 *   the change.
 * - Outside a transaction the change has already committed: rows are buffered, as Moodle's standard log
 *   store does, and written in one multi-row insert when {@see outbox_writer::BUFFER_ROWS} are waiting,
 *   when the oldest has waited {@see outbox_writer::BUFFER_SECONDS}, and at the end of the request or script.
 * - A buffer that cannot be inserted is written to the spool under moodledata with an fsync
 *   ({@see spool_store}); the drain moves it back into the outbox and the spool check reports it until then.
 *
 * After rows reach the outbox the drain is signalled ({@see drain_signal}), once per write, never per event.
 *
 * @package    local_eventrelay
 * @copyright  2026 Moodle Event Relay contributors
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */
class outbox_writer {
    /** @var string The outbox table. */
    public const TABLE = 'local_eventrelay_outbox';

    /** @var int Buffered rows that trigger a write (Moodle's standard log store buffers 50 entries). */
    public const BUFFER_ROWS = 100;

    /** @var float Seconds a buffered row may wait for more rows, checked whenever a row is added. */
    public const BUFFER_SECONDS = 1.0;

    /** @var outbox_writer|null The writer of this request or script. */
    private static $instance = null;

    /** @var \stdClass[] Rows of committed changes waiting for the next write. */
    private $buffer = [];

    /** @var float When the oldest buffered row was added (microtime). */
    private $oldest = 0.0;

    /** @var \WeakMap Event => row whose insert failed inside a transaction, until the commit is known. */
    private $heldforcommit;

    /** @var bool Whether rows were inserted inside a transaction that has not been reported committed yet. */
    private $insertedintransaction = false;

    /** @var bool Whether the shutdown flush is registered. */
    private $shutdownregistered = false;

    /**
     * Makes an empty writer.
     */
    private function __construct() {
        $this->heldforcommit = new \WeakMap();
    }

    /**
     * Returns the writer of this request or script.
     *
     * @return self The writer.
     */
    public static function instance(): self {
        if (self::$instance === null) {
            self::$instance = new self();
        }
        return self::$instance;
    }

    /**
     * Records the outbox row of an event.
     *
     * @param \core\event\base $event The event the row is about (to recognise its commit).
     * @param \stdClass $row The outbox row: eventid, eventtype, routingkey, userid, envelope, timecreated.
     * @return void
     */
    public function write(\core\event\base $event, \stdClass $row): void {
        global $DB;
        // The columns attempts and spooled start at their defaults (0): fewer values to send per row.
        if ($DB->is_transaction_started()) {
            try {
                $DB->insert_record(self::TABLE, $row, false);
                $this->insertedintransaction = true;
            } catch (\Throwable $e) {
                // Whether the change commits is not known yet: keep the row until Moodle says it did.
                $this->heldforcommit[$event] = $row;
                debugging('local_eventrelay: the outbox insert failed inside a transaction; the event is kept '
                    . 'until the change commits: ' . $e->getMessage(), DEBUG_DEVELOPER);
            }
            return;
        }
        $this->buffer($row);
    }

    /**
     * Learns that the change of an event has committed (called by the observer Moodle runs after commit).
     *
     * @param \core\event\base $event The event.
     * @return void
     */
    public function committed(\core\event\base $event): void {
        if (isset($this->heldforcommit[$event])) {
            $row = $this->heldforcommit[$event];
            unset($this->heldforcommit[$event]);
            $this->buffer($row);
        }
        if ($this->insertedintransaction) {
            $this->insertedintransaction = false;
            drain_signal::poke();
        }
    }

    /**
     * Writes the buffered rows now: to the outbox, or to the spool when the outbox cannot take them.
     *
     * Never called inside a transaction by the writer itself; at shutdown a transaction still open is
     * rolled back by Moodle right after, so the rows go to the spool rather than into it.
     *
     * @return void
     */
    public function flush(): void {
        global $DB;
        if (!$this->buffer) {
            return;
        }
        $rows = $this->buffer;
        $this->buffer = [];
        try {
            if ($DB->is_transaction_started()) {
                throw new \coding_exception('a transaction is still open at the end of the request');
            }
            $DB->insert_records(self::TABLE, $rows);
        } catch (\Throwable $e) {
            $this->spool($rows, $e);
        }
        drain_signal::poke();
    }

    /**
     * Forgets everything (PHPUnit resets the database between tests).
     *
     * @return void
     */
    public static function reset_for_tests(): void {
        self::$instance = null;
    }

    /**
     * Adds a row of a committed change to the buffer and writes the buffer when it is due.
     *
     * @param \stdClass $row The row.
     * @return void
     */
    private function buffer(\stdClass $row): void {
        $now = microtime(true);
        if (!$this->buffer) {
            $this->oldest = $now;
        }
        $this->buffer[] = $row;
        if (!$this->shutdownregistered) {
            \core_shutdown_manager::register_function([$this, 'flush']);
            $this->shutdownregistered = true;
        }
        if (count($this->buffer) >= self::BUFFER_ROWS || $now - $this->oldest >= self::BUFFER_SECONDS) {
            $this->flush();
        }
    }

    /**
     * Writes rows the outbox did not take to the spool; reports the loss when even that fails.
     *
     * @param \stdClass[] $rows The rows.
     * @param \Throwable $why Why the outbox did not take them.
     * @return void
     */
    private function spool(array $rows, \Throwable $why): void {
        try {
            $file = spool_store::instance()->save($rows);
            debugging('local_eventrelay: the outbox insert failed (' . $why->getMessage() . '); ' . count($rows)
                . ' events were written to the spool ' . basename($file), DEBUG_DEVELOPER);
        } catch (\Throwable $e) {
            // Neither the database nor moodledata took them: say so in the web server's error log, which an
            // administrator reads even with debugging off (debugging() would stay silent on a production site).
            $ids = implode(', ', array_map(fn($row) => $row->eventid, $rows));
            // phpcs:ignore moodle.PHP.ForbiddenFunctions.FoundWithAlternative
            error_log('local_eventrelay: LOST ' . count($rows) . ' events: the outbox insert failed ('
                . $why->getMessage() . ') and so did the spool (' . $e->getMessage() . '). Event ids: ' . $ids);
        }
    }
}
