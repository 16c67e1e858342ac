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

use local_eventrelay\core\spool;

/**
 * The spool in moodledata (Moodle glue around {@see spool}): where rows go when the outbox insert fails,
 * and how the drain moves them back.
 *
 * Moved rows are marked `spooled` in the outbox, so that the spool check can report them until the broker
 * has confirmed them. The setting `spooledtotal` counts every event that ever went through the spool.
 *
 * @package    local_eventrelay
 * @copyright  2026 Moodle Event Relay contributors
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */
class spool_store {
    /** @var string The outbox table. */
    public const TABLE = 'local_eventrelay_outbox';

    /** @var spool The spool files. */
    private $spool;

    /**
     * Uses a spool folder.
     *
     * @param spool $spool The spool.
     */
    public function __construct(spool $spool) {
        $this->spool = $spool;
    }

    /**
     * Returns the spool of this site: $CFG->dataroot/local_eventrelay/spool.
     *
     * @return self The store.
     */
    public static function instance(): self {
        global $CFG;
        return new self(new spool($CFG->dataroot . '/local_eventrelay/spool'));
    }

    /**
     * Returns the spool files.
     *
     * @return spool The spool.
     */
    public function spool(): spool {
        return $this->spool;
    }

    /**
     * Writes rows to the spool, durably.
     *
     * @param \stdClass[] $rows Outbox rows.
     * @return string The file written.
     * @throws \RuntimeException When moodledata cannot take them either.
     */
    public function save(array $rows): string {
        if (!is_dir($this->spool->dir())) {
            make_writable_directory($this->spool->dir());
        }
        return $this->spool->append(array_map(fn($row) => (array) $row, $rows));
    }

    /**
     * Moves every spool file into the outbox, oldest first; called by the drain under its lock.
     *
     * Rows whose event id is in the outbox already (a move that was cut short) are skipped. A file that
     * cannot be read is set aside for the administrator (the spool check reports it) and the next one is
     * moved; a database failure stops the move and leaves the files for the next drain.
     *
     * @param callable|null $progress Receives a line of text per file.
     * @return int Events moved into the outbox.
     */
    public function move_to_outbox(?callable $progress = null): int {
        global $DB;
        $moved = 0;
        foreach ($this->spool->files() as $file) {
            try {
                $rows = $this->spool->read($file);
            } catch (\RuntimeException $e) {
                $bad = $this->spool->set_aside($file);
                self::report($progress, 'spool file set aside as ' . basename($bad) . ': ' . $e->getMessage());
                continue;
            }
            try {
                // One file holds at most one buffer (100 rows): a single INSERT, all or nothing.
                $fresh = $this->not_in_outbox($rows);
                $DB->insert_records(self::TABLE, $fresh);
                // Should the removal fail, the next move skips the rows already in the outbox.
                $this->spool->remove($file);
                set_config(
                    'spooledtotal',
                    (int) get_config(config::COMPONENT, 'spooledtotal') + count($fresh),
                    config::COMPONENT
                );
            } catch (\Throwable $e) {
                self::report($progress, 'spool file ' . basename($file) . ' kept: ' . $e->getMessage());
                break;
            }
            $moved += count($fresh);
            self::report($progress, 'spool file ' . basename($file) . ': ' . count($fresh) . ' events moved to the outbox');
        }
        return $moved;
    }

    /**
     * Counts the events not published yet that went through the spool.
     *
     * @return int[] ['spool' => events in spool files, 'outbox' => moved rows not confirmed yet,
     *     'bad' => files set aside].
     */
    public function pending(): array {
        global $DB;
        return [
            'spool' => $this->spool->count(),
            'outbox' => $DB->count_records(self::TABLE, ['spooled' => 1]),
            'bad' => count($this->spool->bad_files()),
        ];
    }

    /**
     * Turns spooled rows into outbox records, leaving out event ids the outbox already holds.
     *
     * @param array[] $rows Rows read from a spool file.
     * @return \stdClass[] Records to insert.
     */
    private function not_in_outbox(array $rows): array {
        global $DB;
        [$insql, $params] = $DB->get_in_or_equal(array_column($rows, 'eventid'));
        $present = $DB->get_fieldset_select(self::TABLE, 'eventid', "eventid {$insql}", $params);
        $records = [];
        foreach ($rows as $row) {
            if (in_array($row['eventid'], $present, true)) {
                continue;
            }
            $record = (object) array_intersect_key($row, array_flip(spool::FIELDS));
            $record->attempts = 0;
            $record->spooled = 1;
            $records[] = $record;
        }
        return $records;
    }

    /**
     * Passes a line of progress to the callback, if any.
     *
     * @param callable|null $progress The callback.
     * @param string $line The text.
     * @return void
     */
    private static function report(?callable $progress, string $line): void {
        if ($progress !== null) {
            $progress($line);
        }
    }
}
