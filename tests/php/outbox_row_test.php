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
 * The message body of an outbox row: the stored envelope with only its sequence set.
 *
 * @package    local_eventrelay
 * @copyright  2026 Moodle Event Relay contributors
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 * @covers     \local_eventrelay\core\outbox_row
 */
final class outbox_row_test extends \PHPUnit\Framework\TestCase {
    /**
     * Only the sequence changes: empty objects stay objects, Unicode and slashes stay unescaped, key order stays.
     *
     * @return void
     */
    public function test_body_changes_only_the_sequence(): void {
        $stored = '{"specversion":"1.0","id":"0f8e2f4c-7a6b-4d1e-9c3a-5b2d8e6f1a01","source":"https://lms.example.edu/x",'
            . '"sequence":"00000000000000000000","data":{"other":{},"list":[],"name":"Zoë","n":null}}';
        $row = new outbox_row(
            1795556703458,
            '0f8e2f4c-7a6b-4d1e-9c3a-5b2d8e6f1a01',
            'moodle.user.created',
            's.user.created',
            $stored
        );
        $this->assertSame(str_replace('"00000000000000000000"', '"00000001795556703458"', $stored), $row->body());
    }

    /**
     * A row that does not hold an envelope is refused.
     *
     * @return void
     */
    public function test_body_refuses_what_is_not_an_envelope(): void {
        $this->expectException(\UnexpectedValueException::class);
        (new outbox_row(1, 'x', 't', 'k', '{"id":"x"}'))->body();
    }

    /**
     * Records from the database (numeric strings) become rows.
     *
     * @return void
     */
    public function test_from_record(): void {
        $row = outbox_row::from_record((object) ['id' => '42', 'eventid' => 'e', 'eventtype' => 't', 'routingkey' => 'k',
            'envelope' => '{}', 'attempts' => '3']);
        $this->assertSame([42, 3], [$row->id, $row->attempts]);
    }
}
