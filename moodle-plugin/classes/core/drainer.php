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
 * Drains an outbox: reads rows in sequence order, publishes them in batches, deletes what the broker
 * confirmed and records an attempt and the (redacted) error on the rest.
 *
 * No database transaction or lock is held while the broker is called: each store call stands alone.
 * Callers that may run twice at once (Moodle's adhoc and scheduled tasks) hold a lock around
 * {@see drainer::drain()} so that no row is published by two drains.
 *
 * Policy: a row the broker refuses (returned, nacked, unconfirmed) stays and the drain goes on with the
 * next rows, so one bad row never blocks the outbox; the run stops at once when the broker cannot be
 * used at all (the rows of that batch get the error), and when every row of a batch failed.
 *
 * @package    local_eventrelay
 * @copyright  2026 Moodle Event Relay contributors
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */
class drainer {
    /** @var int Rows per batch unless configured otherwise. */
    public const DEFAULT_BATCH_SIZE = 200;

    /** @var outbox_store The outbox. */
    private $store;

    /** @var publisher The publisher. */
    private $publisher;

    /** @var int Rows per batch. */
    private $batchsize;

    /** @var callable|null Called with a line of progress text, or null. */
    private $progress;

    /**
     * Makes a drainer.
     *
     * @param outbox_store $store The outbox.
     * @param publisher $publisher The publisher.
     * @param int $batchsize Rows per batch (and per wait for confirms), 1 or more.
     * @param callable|null $progress Receives one line of text per batch, for CLI and task output.
     */
    public function __construct(
        outbox_store $store,
        publisher $publisher,
        int $batchsize = self::DEFAULT_BATCH_SIZE,
        ?callable $progress = null
    ) {
        $this->store = $store;
        $this->publisher = $publisher;
        $this->batchsize = max(1, $batchsize);
        $this->progress = $progress;
    }

    /**
     * Drains the outbox once from its oldest row to its newest (rows added meanwhile included).
     *
     * @param int $maxrows Stop after this many rows have been tried; 0 for no limit.
     * @param float $deadline Unix time (microtime) after which no new batch starts; 0 for none.
     * @return drain_result Counts and the last error.
     */
    public function drain(int $maxrows = 0, float $deadline = 0.0): drain_result {
        $result = new drain_result();
        $afterid = 0;
        while (true) {
            if ($deadline > 0 && microtime(true) >= $deadline) {
                $result->stopreason = 'deadline';
                break;
            }
            $limit = $this->batchsize;
            if ($maxrows > 0) {
                $limit = min($limit, $maxrows - $result->tried());
                if ($limit <= 0) {
                    $result->stopreason = 'maxrows';
                    break;
                }
            }
            $rows = $this->store->fetch_after($afterid, $limit);
            if (!$rows) {
                $result->stopreason = 'empty';
                break;
            }
            $afterid = end($rows)->id;
            if (!$this->drain_batch($rows, $result)) {
                break;
            }
        }
        return $result;
    }

    /**
     * Publishes one batch and settles its rows.
     *
     * @param outbox_row[] $rows The batch, ascending id.
     * @param drain_result $result Updated with the outcome.
     * @return bool Whether the drain should go on.
     */
    private function drain_batch(array $rows, drain_result $result): bool {
        $result->batches++;
        try {
            $published = $this->publisher->publish($rows);
        } catch (publish_exception $e) {
            $errors = [];
            foreach ($rows as $row) {
                $errors[$row->id] = $e->getMessage();
            }
            $this->store->record_failures($errors, time());
            $result->failed += count($rows);
            $result->lasterror = $e->getMessage();
            $result->stopreason = 'broker';
            $this->report("batch of " . count($rows) . " rows from {$rows[0]->id}: broker unavailable: {$e->getMessage()}");
            return false;
        }
        if ($published->confirmed) {
            $this->store->delete($published->confirmed);
        }
        if ($published->failed) {
            $this->store->record_failures($published->failed, time());
            $result->lasterror = end($published->failed);
        }
        $result->published += count($published->confirmed);
        $result->failed += count($published->failed);
        $this->report('batch of ' . count($rows) . " rows from {$rows[0]->id}: " . count($published->confirmed)
            . ' published, ' . count($published->failed) . ' kept');
        if (!$published->confirmed) {
            $result->stopreason = 'refused';
            return false;
        }
        return true;
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
}
