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
 * Tests of the UUID helper.
 *
 * @package    local_eventrelay
 * @copyright  2026 Moodle Event Relay contributors
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 * @covers     \local_eventrelay\core\uuid
 */
class uuid_test extends \PHPUnit\Framework\TestCase {
    /**
     * New ids are lower-case RFC 4122 version 4 UUIDs, all different, with random bits that vary.
     *
     * @return void
     */
    public function test_v4(): void {
        $ids = [];
        for ($i = 0; $i < 2000; $i++) {
            $ids[] = uuid::v4();
        }
        foreach ($ids as $id) {
            $this->assertMatchesRegularExpression('/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/D', $id);
            $this->assertTrue(uuid::is_valid($id));
        }
        $this->assertCount(2000, array_unique($ids));
        // The variant nibble takes all four values 8, 9, a, b (random bits are not fixed).
        $variants = array_unique(array_map(function (string $id): string {
            return $id[19];
        }, $ids));
        sort($variants);
        $this->assertSame(['8', '9', 'a', 'b'], $variants);
    }

    /**
     * is_valid() accepts lower-case UUIDs of any version and nothing else.
     *
     * @return void
     */
    public function test_is_valid(): void {
        $this->assertTrue(uuid::is_valid('0f8e2f4c-7a6b-4d1e-9c3a-5b2d8e6f1a01'));
        $this->assertTrue(uuid::is_valid('00000000-0000-1000-8000-000000000000'));
        $this->assertFalse(uuid::is_valid('0F8E2F4C-7A6B-4D1E-9C3A-5B2D8E6F1A01'));
        $this->assertFalse(uuid::is_valid('0f8e2f4c7a6b4d1e9c3a5b2d8e6f1a01'));
        $this->assertFalse(uuid::is_valid("0f8e2f4c-7a6b-4d1e-9c3a-5b2d8e6f1a01\n"));
        $this->assertFalse(uuid::is_valid('{0f8e2f4c-7a6b-4d1e-9c3a-5b2d8e6f1a01}'));
        $this->assertFalse(uuid::is_valid(''));
    }
}
