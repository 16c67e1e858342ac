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

use local_eventrelay\tests\broker_route;
use local_eventrelay\tests\moodle_relay_helper as helper;

defined('MOODLE_INTERNAL') || die();

global $CFG;
require_once($CFG->dirroot . '/user/lib.php');
require_once($CFG->dirroot . '/cohort/lib.php');
require_once($CFG->libdir . '/completionlib.php');
require_once($CFG->dirroot . '/completion/completion_completion.php');

/**
 * The observer inside a real Moodle: each relayed change, made through Moodle's own APIs, writes exactly one
 * outbox row whose envelope validates; rolled-back changes and disabled types write none.
 *
 * @package    local_eventrelay
 * @copyright  2026 Moodle Event Relay contributors
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 * @covers     \local_eventrelay\observer
 * @covers     \local_eventrelay\local\outbox_drain
 * @covers     \local_eventrelay\local\snapshot_reader
 */
#[\PHPUnit\Framework\Attributes\CoversClass(\local_eventrelay\observer::class)]
#[\PHPUnit\Framework\Attributes\CoversClass(\local_eventrelay\local\outbox_drain::class)]
#[\PHPUnit\Framework\Attributes\CoversClass(\local_eventrelay\local\snapshot_reader::class)]
final class observer_test extends \advanced_testcase {
    /** @var string[] JSON bodies (sequence set) of every row the test checked, to validate at the end. */
    private $bodies = [];

    /**
     * Resets the site and records every event type.
     *
     * @return void
     */
    protected function setUp(): void {
        parent::setUp();
        $this->resetAfterTest();
        helper::configure();
        $this->bodies = [];
    }

    /**
     * Runs a change and asserts it wrote exactly one row of the given type; keeps its body for validation.
     *
     * @param string $type Expected CloudEvent type.
     * @param callable $change The change.
     * @return array The envelope (decoded), sequence set.
     */
    private function assert_one_row(string $type, callable $change): array {
        $before = helper::rows();
        $change();
        $after = helper::rows();
        $new = array_slice($after, count($before));
        $this->assertCount(count($before) + 1, $after, "Exactly one row for {$type}, got: "
            . implode(', ', array_column($new, 'eventtype')));
        $row = end($new);
        $this->assertSame($type, $row->eventtype);
        $this->assertSame(helper::SITE_ID . '.' . substr($type, strlen('moodle.')), $row->routingkey);
        $this->assertSame('0', (string) $row->attempts);
        $body = helper::body($row);
        $this->bodies[$type] = $body;
        $envelope = json_decode($body, true);
        $this->assertSame($row->eventid, $envelope['id']);
        $this->assertSame((int) $row->id, (int) $envelope['sequence']);
        return $envelope;
    }

    /**
     * Asserts that every kept body is accepted by the Rust validator.
     *
     * @return void
     */
    private function assert_bodies_valid(): void {
        if (helper::validator() === null) {
            $this->markTestSkipped('Set RELAY_WORKER_BIN to the relay-worker binary to validate the envelopes.');
        }
        $types = array_keys($this->bodies);
        foreach (helper::validate(array_values($this->bodies)) as $i => $verdict) {
            $this->assertTrue($verdict['ok'], "{$types[$i]} is invalid: " . ($verdict['reason'] ?? '?')
                . "\n" . $this->bodies[$types[$i]]);
        }
    }

    /**
     * Every relayed change of a user's life writes one valid row: create, update, suspend, enrol, update the
     * enrolment, assign and unassign a role, unenrol, add to and remove from a cohort, complete an activity
     * and a course, delete.
     *
     * @return void
     */
    public function test_each_change_writes_one_valid_row(): void {
        global $CFG, $DB;
        $CFG->enablecompletion = 1;
        $generator = $this->getDataGenerator();
        $course = $generator->create_course(['enablecompletion' => 1]);
        $coursecontext = \context_course::instance($course->id);
        $manual = enrol_get_plugin('manual');
        $instance = $DB->get_record('enrol', ['courseid' => $course->id, 'enrol' => 'manual'], '*', MUST_EXIST);
        $studentrole = $DB->get_field('role', 'id', ['shortname' => 'student'], MUST_EXIST);
        $cohort = $generator->create_cohort(['idnumber' => 'C-1', 'name' => 'Cohort one']);
        $assign = $generator->create_module(
            'assign',
            ['course' => $course->id],
            ['completion' => COMPLETION_TRACKING_MANUAL]
        );

        $userid = 0;
        $created = $this->assert_one_row('moodle.user.created', function () use (&$userid, $CFG): void {
            $userid = user_create_user((object) [
                'username' => 'relayuser', 'password' => 'Passw0rd!', 'email' => 'relay@example.com',
                'firstname' => 'Rel', 'lastname' => 'Ay', 'auth' => 'manual', 'confirmed' => 1,
                'mnethostid' => $CFG->mnet_localhost_id, 'idnumber' => 'R-1',
            ]);
        });
        $this->assertSame("user/{$userid}", $created['subject']);
        $this->assertSame('relayuser', $created['data']['snapshot']['username']);
        $this->assertArrayNotHasKey('password', $created['data']['snapshot']);

        $updated = $this->assert_one_row('moodle.user.updated', function () use ($userid): void {
            user_update_user((object) ['id' => $userid, 'firstname' => 'Relay'], false);
        });
        $this->assertSame('Relay', $updated['data']['snapshot']['firstname']);

        $suspended = $this->assert_one_row('moodle.user.updated', function () use ($userid): void {
            user_update_user((object) ['id' => $userid, 'suspended' => 1], false);
        });
        $this->assertTrue($suspended['data']['snapshot']['suspended']);
        $this->bodies['moodle.user.updated (suspended)'] = $this->bodies['moodle.user.updated'];
        user_update_user((object) ['id' => $userid, 'suspended' => 0], false);

        $enrolled = $this->assert_one_row('moodle.enrolment.created', function () use ($manual, $instance, $userid): void {
            $manual->enrol_user($instance, $userid);
        });
        $this->assertSame("course/{$course->id}/user/{$userid}", $enrolled['subject']);
        $this->assertSame('manual', $enrolled['data']['snapshot']['enrol']);

        $this->assert_one_row('moodle.enrolment.updated', function () use ($manual, $instance, $userid): void {
            $manual->update_user_enrol($instance, $userid, ENROL_USER_SUSPENDED);
        });
        $manual->update_user_enrol($instance, $userid, ENROL_USER_ACTIVE);

        $assigned = $this->assert_one_row(
            'moodle.role.assigned',
            function () use ($studentrole, $userid, $coursecontext): void {
                role_assign($studentrole, $userid, $coursecontext->id);
            }
        );
        $this->assertSame('student', $assigned['data']['snapshot']['roleshortname']);

        $this->assert_one_row('moodle.cohort.member_added', function () use ($cohort, $userid): void {
            cohort_add_member($cohort->id, $userid);
        });
        $this->assert_one_row('moodle.cohort.member_removed', function () use ($cohort, $userid): void {
            cohort_remove_member($cohort->id, $userid);
        });

        $cm = get_coursemodule_from_instance('assign', $assign->id);
        $this->assert_one_row('moodle.completion.module_updated', function () use ($course, $cm, $userid): void {
            (new \completion_info($course))->update_state($cm, COMPLETION_COMPLETE, $userid);
        });
        $completed = $this->assert_one_row('moodle.completion.course_completed', function () use ($course, $userid): void {
            (new \completion_completion(['course' => $course->id, 'userid' => $userid]))->mark_complete();
        });
        $this->assertSame($userid, $completed['data']['relateduserid']);

        $this->assert_one_row('moodle.role.unassigned', function () use ($studentrole, $userid, $coursecontext): void {
            role_unassign($studentrole, $userid, $coursecontext->id);
        });
        $unenrolled = $this->assert_one_row('moodle.enrolment.deleted', function () use ($manual, $instance, $userid): void {
            $manual->unenrol_user($instance, $userid);
        });
        $this->assertTrue($unenrolled['data']['snapshot']['lastenrol']);

        $deleted = $this->assert_one_row('moodle.user.deleted', function () use ($userid, $DB): void {
            delete_user($DB->get_record('user', ['id' => $userid]));
        });
        $this->assertSame('relayuser', $deleted['data']['other']['username']);
        $this->assertTrue($deleted['data']['snapshot']['deleted']);

        $this->assertCount(13, $this->bodies);
        $this->assertCount(12, array_unique(array_map(function (string $body): string {
            return json_decode($body)->type;
        }, $this->bodies)), 'All twelve types were observed');
        $this->assert_every_row_reaches_the_broker();
        $this->assert_bodies_valid();
    }

    /**
     * Drains the outbox to a fresh exchange and queue on the real broker and checks that every row arrived,
     * in sequence order, all twelve types among them.
     *
     * @return void
     */
    private function assert_every_row_reaches_the_broker(): void {
        $rows = helper::rows();
        $route = new broker_route();
        try {
            helper::configure($route->settings());
            $this->assertSame(count($rows), local\outbox_drain::run()->published);
            $types = array_map(fn($message) => $message->get('type'), $route->take_all());
            $this->assertSame(array_column($rows, 'eventtype'), $types);
            $this->assertCount(12, array_unique($types));
        } finally {
            $route->remove();
        }
    }

    /**
     * A change rolled back with its transaction leaves no row (and no drain task).
     *
     * @return void
     */
    public function test_rolled_back_change_writes_nothing(): void {
        global $DB;
        // Tests normally run inside a transaction that is rolled back; this one needs real transactions.
        $this->preventResetByRollback();
        $user = $this->getDataGenerator()->create_user();
        $before = count(helper::rows());
        $transaction = $DB->start_delegated_transaction();
        user_update_user((object) ['id' => $user->id, 'firstname' => 'Rolled'], false);
        $this->assertCount($before + 1, helper::rows(), 'Written inside the transaction');
        try {
            $transaction->rollback(new \moodle_exception('rollbacktest', 'error'));
        } catch (\moodle_exception $e) {
            $this->assertSame('rollbacktest', $e->errorcode);
        }
        $this->assertCount($before, helper::rows());
        $this->assertNotSame('Rolled', $DB->get_field('user', 'firstname', ['id' => $user->id]));
    }

    /**
     * Disabled types write nothing; enabled ones still do.
     *
     * @return void
     */
    public function test_disabled_types_write_nothing(): void {
        helper::configure(['events' => 'moodle.enrolment.created, moodle.user.deleted']);
        $user = $this->getDataGenerator()->create_user();
        user_update_user((object) ['id' => $user->id, 'firstname' => 'Off'], false);
        $this->assertCount(0, helper::rows());

        $course = $this->getDataGenerator()->create_course();
        $this->getDataGenerator()->enrol_user($user->id, $course->id, null, 'manual');
        $this->assertSame(['moodle.enrolment.created'], array_column(helper::rows(), 'eventtype'));
    }

    /**
     * Without a site id nothing is recorded.
     *
     * @return void
     */
    public function test_nothing_recorded_without_site_id(): void {
        helper::configure(['siteid' => '']);
        $this->getDataGenerator()->create_user();
        $this->assertCount(0, helper::rows());
    }

    /**
     * An observer failure never breaks the user's change: it is reported and the change commits.
     *
     * @return void
     */
    public function test_failure_does_not_break_the_change(): void {
        global $CFG, $DB;
        $CFG->wwwroot = 'not a url';
        $user = $this->getDataGenerator()->create_user();
        $this->assertDebuggingCalled();
        $this->assertTrue($DB->record_exists('user', ['id' => $user->id]));
        $this->assertCount(0, helper::rows());
    }

    /**
     * The first recorded event of a request queues one drain task; later ones do not add more.
     *
     * @return void
     */
    public function test_drain_task_queued_once(): void {
        $this->preventResetByRollback();
        $generator = $this->getDataGenerator();
        for ($i = 0; $i < 3; $i++) {
            $generator->create_user();
        }
        $this->assertCount(3, helper::rows());
        $tasks = \core\task\manager::get_adhoc_tasks(task\drain_outbox::class);
        $this->assertCount(1, $tasks);
    }
}
