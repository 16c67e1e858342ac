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
 * Where the drainer reads and settles outbox rows; Moodle's implementation is
 * {@see \local_eventrelay\local\db_outbox_store}.
 *
 * No method may keep a database transaction or row lock open after it returns: the drainer calls the
 * broker between them.
 *
 * @package    local_eventrelay
 * @copyright  2026 Moodle Event Relay contributors
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */
interface outbox_store {
    /**
     * Returns the next rows after a given id, in id (= sequence) order.
     *
     * @param int $afterid Only rows with a greater id; 0 for the oldest.
     * @param int $limit How many rows at most.
     * @return outbox_row[] The rows, ascending id.
     */
    public function fetch_after(int $afterid, int $limit): array;

    /**
     * Deletes rows the broker has confirmed.
     *
     * @param int[] $ids Row ids.
     * @return void
     */
    public function delete(array $ids): void;

    /**
     * Records a failed publish attempt on rows: attempts + 1, the (redacted) error and the time.
     *
     * @param string[] $errors Row id => error message.
     * @param int $time Unix time of the attempt.
     * @return void
     */
    public function record_failures(array $errors, int $time): void;
}
