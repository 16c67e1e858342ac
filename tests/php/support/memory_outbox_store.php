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

namespace local_eventrelay\tests;

use local_eventrelay\core\outbox_row;
use local_eventrelay\core\outbox_store;

/**
 * An outbox in memory, for testing the drainer without Moodle; it counts what the drainer asks of it.
 *
 * @package    local_eventrelay
 * @copyright  2026 Moodle Event Relay contributors
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */
class memory_outbox_store implements outbox_store {
    /** @var outbox_row[] Row id => row, ascending. */
    public $rows = [];

    /** @var string[] Row id => last error. */
    public $lasterrors = [];

    /** @var int[] Row id => time of the last attempt. */
    public $lastattempts = [];

    /** @var int[] Every id ever deleted, in order (to prove nothing is deleted twice). */
    public $deleted = [];

    /** @var int Next row id. */
    private $nextid = 1;

    /**
     * Adds a row as the observer would: the envelope with sequence 0, the id assigned here.
     *
     * @param array $envelope An envelope from envelope_builder::build().
     * @param string $routingkey Its routing key.
     * @return outbox_row The stored row.
     */
    public function add(array $envelope, string $routingkey): outbox_row {
        $json = \local_eventrelay\core\json_encoder::encode(
            \local_eventrelay\core\sequence::with_sequence($envelope, 0)
        );
        $row = new outbox_row($this->nextid++, $envelope['id'], $envelope['type'], $routingkey, $json);
        $this->rows[$row->id] = $row;
        return $row;
    }

    /**
     * Adds user_updated events for users 1..n of a site, as the observer would.
     *
     * @param int $count How many.
     * @param string $siteid The site id (first word of the routing key).
     * @return outbox_row[] The stored rows.
     */
    public function add_user_updates(int $count, string $siteid): array {
        $builder = new \local_eventrelay\core\envelope_builder($siteid, 'https://lms.example.edu');
        $rows = [];
        for ($userid = 1; $userid <= $count; $userid++) {
            $envelope = $builder->build([
                'eventname' => '\\core\\event\\user_updated',
                'objectid' => (string) $userid,
                'crud' => 'u',
                'contextid' => (string) (100 + $userid),
                'contextlevel' => '30',
                'contextinstanceid' => (string) $userid,
                'userid' => '2',
                'relateduserid' => (string) $userid,
                'courseid' => '0',
                'anonymous' => '0',
                'other' => null,
                'timecreated' => (string) (1790000000 + $userid),
            ], ['id' => (string) $userid, 'username' => "user{$userid}", 'suspended' => '0', 'password' => 'x']);
            $rows[] = $this->add($envelope, "{$siteid}.user.updated");
        }
        return $rows;
    }

    /**
     * Returns the next rows after an id.
     *
     * @param int $afterid Only greater ids.
     * @param int $limit At most this many.
     * @return outbox_row[] Ascending id.
     */
    public function fetch_after(int $afterid, int $limit): array {
        ksort($this->rows);
        $out = [];
        foreach ($this->rows as $id => $row) {
            if ($id > $afterid) {
                $out[] = clone $row;
                if (count($out) >= $limit) {
                    break;
                }
            }
        }
        return $out;
    }

    /**
     * Deletes rows.
     *
     * @param int[] $ids Row ids.
     * @return void
     */
    public function delete(array $ids): void {
        foreach ($ids as $id) {
            if (!isset($this->rows[$id])) {
                throw new \LogicException("Row {$id} deleted twice or never stored");
            }
            unset($this->rows[$id], $this->lasterrors[$id], $this->lastattempts[$id]);
            $this->deleted[] = $id;
        }
    }

    /**
     * Records failures.
     *
     * @param string[] $errors Row id => error.
     * @param int $time Attempt time.
     * @return void
     */
    public function record_failures(array $errors, int $time): void {
        foreach ($errors as $id => $error) {
            $this->rows[$id]->attempts++;
            $this->lasterrors[$id] = $error;
            $this->lastattempts[$id] = $time;
        }
    }
}
