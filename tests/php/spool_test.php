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
 * Tests of the spool, the last resort of rows the outbox could not take.
 *
 * @package    local_eventrelay
 * @copyright  2026 Moodle Event Relay contributors
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 * @covers     \local_eventrelay\core\spool
 */
class spool_test extends \PHPUnit\Framework\TestCase {
    /** @var string A fresh folder per test. */
    private $dir;

    /**
     * Makes a fresh folder.
     *
     * @return void
     */
    protected function setUp(): void {
        $this->dir = sys_get_temp_dir() . '/eventrelay-spool-' . bin2hex(random_bytes(6));
    }

    /**
     * Removes the folder.
     *
     * @return void
     */
    protected function tearDown(): void {
        foreach (glob($this->dir . '/{,.}*', GLOB_BRACE) ?: [] as $file) {
            if (is_file($file)) {
                unlink($file);
            }
        }
        if (is_dir($this->dir)) {
            rmdir($this->dir);
        }
    }

    /**
     * Makes an outbox row.
     *
     * @param int $n A number that makes it unique.
     * @return array The row.
     */
    private static function row(int $n): array {
        return [
            'eventid' => sprintf('00000000-0000-4000-8000-%012d', $n),
            'eventtype' => 'moodle.user.updated',
            'routingkey' => 'lms.user.updated',
            'userid' => $n,
            'envelope' => '{"id":"x","data":{"snapshot":{"firstname":"Zoë \u00e9"}}}',
            'timecreated' => 1764547200 + $n,
            'attempts' => 0,
        ];
    }

    /**
     * Files are created in a missing folder, come back oldest first with their rows unchanged, and only the
     * spool's own fields are kept.
     *
     * @return void
     */
    public function test_rows_come_back_in_order_and_unchanged(): void {
        $spool = new spool($this->dir);
        $this->assertSame([], $spool->files());
        $first = $spool->append([self::row(1), self::row(2)]);
        $second = $spool->append([(object) self::row(3)]);
        $this->assertSame([$first, $second], $spool->files());
        $this->assertSame(3, $spool->count());

        $expected = array_map(function (int $n): array {
            $row = self::row($n);
            unset($row['attempts']);
            return $row;
        }, [1, 2]);
        $this->assertSame($expected, $spool->read($first));
        $this->assertSame('moodle.user.updated', $spool->read($second)[0]['eventtype']);

        $spool->remove($first);
        $this->assertSame([$second], $spool->files());
        $this->assertSame(1, $spool->count());
    }

    /**
     * No temporary file is left behind and files are readable only as whole files.
     *
     * @return void
     */
    public function test_no_temporary_file_is_left(): void {
        $spool = new spool($this->dir);
        for ($i = 0; $i < 20; $i++) {
            $spool->append([self::row($i)]);
        }
        $this->assertCount(20, $spool->files());
        $this->assertSame([], glob($this->dir . '/.*.tmp'));
    }

    /**
     * A row without a required field is refused before anything is written.
     *
     * @return void
     */
    public function test_incomplete_row_is_refused(): void {
        $spool = new spool($this->dir);
        $row = self::row(1);
        unset($row['envelope']);
        try {
            $spool->append([$row]);
            $this->fail('An incomplete row was spooled');
        } catch (\InvalidArgumentException $e) {
            $this->assertStringContainsString('envelope', $e->getMessage());
        }
        $this->assertSame([], $spool->files());
    }

    /**
     * A damaged file is reported with its line, can be set aside, and then no longer counts as waiting.
     *
     * @return void
     */
    public function test_damaged_file_is_reported_and_set_aside(): void {
        $spool = new spool($this->dir);
        $good = $spool->append([self::row(1)]);
        $damaged = $spool->append([self::row(2), self::row(3)]);
        file_put_contents($damaged, substr(file_get_contents($damaged), 0, -20));
        try {
            $spool->read($damaged);
            $this->fail('A damaged file was read');
        } catch (\RuntimeException $e) {
            $this->assertStringContainsString('line 2', $e->getMessage());
        }
        $bad = $spool->set_aside($damaged);
        $this->assertFileExists($bad);
        $this->assertSame([$good], $spool->files());
        $this->assertSame([$bad], $spool->bad_files());
    }

    /**
     * A folder that cannot be created is an error, not a silent loss.
     *
     * @return void
     */
    public function test_unwritable_folder_is_an_error(): void {
        $blocker = $this->dir;
        file_put_contents($blocker, 'a file where the folder should be');
        try {
            (new spool($blocker . '/spool'))->append([self::row(1)]);
            $this->fail('Rows were accepted where they cannot be written');
        } catch (\RuntimeException $e) {
            $this->assertStringContainsString('Cannot create the spool folder', $e->getMessage());
        } finally {
            unlink($blocker);
        }
    }
}
