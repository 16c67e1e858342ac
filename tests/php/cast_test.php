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
 * Tests of the casts shared by snapshots, event fields and `data.other`.
 *
 * @package    local_eventrelay
 * @copyright  2026 Moodle Event Relay contributors
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 * @covers     \local_eventrelay\core\cast
 */
final class cast_test extends \PHPUnit\Framework\TestCase {
    /**
     * Casts accept Moodle's forms of a value and refuse anything that would change its meaning.
     *
     * @return void
     */
    public function test_casts(): void {
        $this->assertSame(42, cast::to_int('42', 'x'));
        $this->assertSame(-1, cast::to_int('-1', 'x'));
        $this->assertSame(0, cast::to_int('0', 'x'));
        $this->assertSame(7, cast::to_int('007', 'x'));
        $this->assertSame(PHP_INT_MAX, cast::to_int((string) PHP_INT_MAX, 'x'));
        $this->assertSame(3, cast::to_int(3.0, 'x'));
        $this->assertSame(1, cast::to_int(true, 'x'));
        $this->assertTrue(cast::to_bool('1', 'x'));
        $this->assertFalse(cast::to_bool('0', 'x'));
        $this->assertFalse(cast::to_bool(0, 'x'));
        $this->assertTrue(cast::to_bool(true, 'x'));
        $this->assertSame('123', cast::to_string(123, 'x'));
        $this->assertSame('', cast::to_string('', 'x'));
        $this->assertNull(cast::apply(null, cast::NULLABLE_INT, 'x'));
        $this->assertSame(5, cast::apply('5', cast::NULLABLE_INT, 'x'));

        $refused = [
            [cast::INT, 'abc'], [cast::INT, '1.5'], [cast::INT, '42 '], [cast::INT, "42\n"], [cast::INT, ''],
            [cast::INT, null], [cast::INT, 1.5], [cast::INT, '99999999999999999999'], [cast::INT, []],
            [cast::BOOL, '2'], [cast::BOOL, 'yes'], [cast::BOOL, null],
            [cast::STRING, null], [cast::STRING, ['a']], [cast::STRING, true],
        ];
        foreach ($refused as [$cast, $value]) {
            try {
                cast::apply($value, $cast, 'snapshot.field');
                $this->fail("{$cast} accepted " . var_export($value, true));
            } catch (\InvalidArgumentException $e) {
                $this->assertStringContainsString('snapshot.field', $e->getMessage());
            }
        }
    }
}
