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

use local_eventrelay\core\outbox_row;
use local_eventrelay\core\outbox_store;

/**
 * The outbox in Moodle's database (table local_eventrelay_outbox).
 *
 * Every method is a single statement or a few independent ones outside any transaction, so that the
 * drainer holds no row lock while it waits for the broker.
 *
 * @package    local_eventrelay
 * @copyright  2026 Moodle Event Relay contributors
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */
class db_outbox_store implements outbox_store {
    /** @var string The table. */
    public const TABLE = 'local_eventrelay_outbox';

    /** @var int Ids per DELETE or UPDATE statement. */
    public const CHUNK = 500;

    /** @var int Seconds a row whose publishing failed is left alone; 0 to try every row on every read. */
    private $retrydelay;

    /**
     * Uses the outbox table.
     *
     * @param int $retrydelay Seconds a row whose publishing failed is skipped by fetch_after() (the follower
     *     polls many times a second and must not hammer the broker with a row it refuses).
     */
    public function __construct(int $retrydelay = 0) {
        $this->retrydelay = max(0, $retrydelay);
    }

    /**
     * Returns the next rows after an id (primary-key range scan; failed rows filtered on the way).
     *
     * @param int $afterid Only greater ids.
     * @param int $limit At most this many.
     * @return outbox_row[] Ascending id.
     */
    public function fetch_after(int $afterid, int $limit): array {
        global $DB;
        $where = 'id > ?';
        $params = [$afterid];
        if ($this->retrydelay > 0) {
            $where .= ' AND (attempts = 0 OR timelastattempt <= ?)';
            $params[] = time() - $this->retrydelay;
        }
        $records = $DB->get_records_select(
            self::TABLE,
            $where,
            $params,
            'id ASC',
            'id, eventid, eventtype, routingkey, envelope, attempts',
            0,
            $limit
        );
        return array_values(array_map([outbox_row::class, 'from_record'], $records));
    }

    /**
     * Deletes confirmed rows.
     *
     * @param int[] $ids Row ids.
     * @return void
     */
    public function delete(array $ids): void {
        global $DB;
        foreach (array_chunk($ids, self::CHUNK) as $chunk) {
            $DB->delete_records_list(self::TABLE, 'id', $chunk);
        }
    }

    /**
     * Records a failed attempt on rows, one UPDATE per distinct error.
     *
     * @param string[] $errors Row id => error (already redacted).
     * @param int $time Attempt time.
     * @return void
     */
    public function record_failures(array $errors, int $time): void {
        global $DB;
        $byerror = [];
        foreach ($errors as $id => $error) {
            $byerror[$error][] = (int) $id;
        }
        foreach ($byerror as $error => $ids) {
            foreach (array_chunk($ids, self::CHUNK) as $chunk) {
                [$insql, $params] = $DB->get_in_or_equal($chunk, SQL_PARAMS_NAMED);
                $params['lasterror'] = (string) $error;
                $params['time'] = $time;
                $DB->execute('UPDATE {' . self::TABLE . '} SET attempts = attempts + 1, lasterror = :lasterror, '
                    . "timelastattempt = :time WHERE id {$insql}", $params);
            }
        }
    }
}
