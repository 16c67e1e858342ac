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

namespace local_eventrelay;

use local_eventrelay\local\backfill;
use local_eventrelay\local\config;
use local_eventrelay\tests\moodle_relay_helper as helper;

/**
 * Backfill: current users, enrolments and completions become valid events with data.backfill = true,
 * in batches, resumable, filtered.
 *
 * @package    local_eventrelay
 * @copyright  2026 Moodle Event Relay contributors
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 * @covers     \local_eventrelay\local\backfill
 */
#[\PHPUnit\Framework\Attributes\CoversClass(\local_eventrelay\local\backfill::class)]
final class backfill_test extends \advanced_testcase {
    /**
     * Makes a site with users, enrolments and one completion, recorded before the relay was configured.
     *
     * @return array [course, users]
     */
    private function make_site(): array {
        global $CFG;
        require_once($CFG->dirroot . '/completion/completion_completion.php');
        $this->resetAfterTest();
        helper::configure(['siteid' => '']);
        $CFG->enablecompletion = 1;
        $generator = $this->getDataGenerator();
        $course = $generator->create_course(['enablecompletion' => 1]);
        $users = [];
        for ($i = 0; $i < 5; $i++) {
            $users[] = $user = $generator->create_user();
            $generator->enrol_user($user->id, $course->id, null, 'manual');
        }
        (new \completion_completion(['course' => $course->id, 'userid' => $users[0]->id]))->mark_complete();
        $this->assertCount(0, helper::rows());
        helper::configure();
        return [$course, $users];
    }

    /**
     * Every source, in small batches, makes valid backfill events; a second run writes nothing more.
     *
     * @return void
     */
    public function test_backfill_all_sources_and_resume(): void {
        global $CFG, $DB;
        [$course, $users] = $this->make_site();
        $backfill = new backfill(config::load());
        $counts = [];
        foreach (array_keys(backfill::SOURCES) as $source) {
            $counts[$source] = 0;
            $batches = 0;
            while (($written = $backfill->next_batch($source, 2)) > 0) {
                $this->assertLessThanOrEqual(2, $written);
                $counts[$source] += $written;
                $batches++;
            }
            $this->assertSame(0, $backfill->next_batch($source, 2), 'Resumes after the last row: nothing left');
        }
        $nonguest = $DB->count_records_select('user', 'deleted = 0 AND id <> ?', [$CFG->siteguest]);
        $this->assertSame(['users' => $nonguest, 'enrolments' => 5, 'completions' => 1], $counts);

        $bodies = [];
        foreach (helper::rows() as $row) {
            $body = helper::body($row);
            $envelope = json_decode($body, true);
            $this->assertTrue($envelope['data']['backfill']);
            $bodies[] = $body;
        }
        if (helper::validator() !== null) {
            foreach (helper::validate($bodies) as $i => $verdict) {
                $this->assertTrue($verdict['ok'], ($verdict['reason'] ?? '?') . "\n" . $bodies[$i]);
            }
        }
    }

    /**
     * Filters restrict the rows, and keep their own cursor.
     *
     * @return void
     */
    public function test_filters(): void {
        [$course, $users] = $this->make_site();
        $backfill = new backfill(config::load(), [$users[1]->id, $users[2]->id], [$course->id]);
        $this->assertSame(2, $backfill->next_batch('enrolments', 10));
        $this->assertSame(0, $backfill->next_batch('completions', 10));
        $this->assertSame(2, $backfill->next_batch('users', 10));
        $this->assertNotSame($backfill->cursor_name('users'), (new backfill(config::load()))->cursor_name('users'));
        $backfill->reset('users');
        $this->assertSame(2, $backfill->next_batch('users', 10), 'After a reset it starts again');
    }
}
