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

namespace local_eventrelay\privacy;

use core_privacy\local\request\approved_contextlist;
use core_privacy\local\request\approved_userlist;
use core_privacy\local\request\userlist;
use core_privacy\local\request\writer;
use core_privacy\tests\provider_testcase;
use local_eventrelay\tests\moodle_relay_helper as helper;

/**
 * The privacy provider: metadata, and export and deletion of the outbox rows about a user.
 *
 * @package    local_eventrelay
 * @copyright  2026 Moodle Event Relay contributors
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 * @covers     \local_eventrelay\privacy\provider
 */
#[\PHPUnit\Framework\Attributes\CoversClass(\local_eventrelay\privacy\provider::class)]
final class provider_test extends provider_testcase {
    /** @var \stdClass First user, with two outbox rows. */
    private $user1;

    /** @var \stdClass Second user, with one outbox row. */
    private $user2;

    /**
     * Makes two users with outbox rows (user_created; user_updated for the first).
     *
     * @return void
     */
    protected function setUp(): void {
        global $CFG;
        parent::setUp();
        require_once($CFG->dirroot . '/user/lib.php');
        $this->resetAfterTest();
        helper::configure();
        $this->user1 = $this->getDataGenerator()->create_user();
        $this->user2 = $this->getDataGenerator()->create_user();
        user_update_user((object) ['id' => $this->user1->id, 'city' => 'Perth'], false);
    }

    /**
     * The metadata names the outbox table and the broker.
     *
     * @return void
     */
    public function test_metadata(): void {
        $collection = provider::get_metadata(new \core_privacy\local\metadata\collection('local_eventrelay'));
        $names = array_map(function ($item) {
            return $item->get_name();
        }, $collection->get_collection());
        $this->assertEqualsCanonicalizing(['local_eventrelay_outbox', 'broker'], $names);
    }

    /**
     * The system context holds the users' data, and both users are found in it.
     *
     * @return void
     */
    public function test_contexts_and_users(): void {
        $system = \context_system::instance();
        $this->assertSame(
            [(int) $system->id],
            array_map('intval', provider::get_contexts_for_userid($this->user1->id)->get_contextids())
        );
        $nobody = $this->getDataGenerator()->create_user();
        global $DB;
        $DB->delete_records('local_eventrelay_outbox', ['userid' => $nobody->id]);
        $this->assertSame([], provider::get_contexts_for_userid($nobody->id)->get_contextids());

        $userlist = new userlist($system, 'local_eventrelay');
        provider::get_users_in_context($userlist);
        $this->assertEqualsCanonicalizing([$this->user1->id, $this->user2->id], $userlist->get_userids());
    }

    /**
     * Export gives the user's waiting events.
     *
     * @return void
     */
    public function test_export(): void {
        $system = \context_system::instance();
        $this->export_context_data_for_user($this->user1->id, $system, 'local_eventrelay');
        $writer = writer::with_context($system);
        $this->assertTrue($writer->has_any_data());
        $data = $writer->get_data([get_string('pluginname', 'local_eventrelay'),
            get_string('privacy:outbox', 'local_eventrelay')]);
        $this->assertCount(2, $data->events);
        $this->assertSame('moodle.user.created', $data->events[0]->eventtype);
        $this->assertSame('moodle.user.updated', $data->events[1]->eventtype);
        $this->assertEquals($this->user1->id, $data->events[1]->event->data->snapshot->id);
    }

    /**
     * Deleting for one user, for a list of users, and for the whole context.
     *
     * @return void
     */
    public function test_delete(): void {
        global $DB;
        $system = \context_system::instance();
        provider::delete_data_for_user(new approved_contextlist($this->user1, 'local_eventrelay', [$system->id]));
        $this->assertSame(0, $DB->count_records('local_eventrelay_outbox', ['userid' => $this->user1->id]));
        $this->assertSame(1, $DB->count_records('local_eventrelay_outbox', ['userid' => $this->user2->id]));

        provider::delete_data_for_users(new approved_userlist($system, 'local_eventrelay', [$this->user2->id]));
        $this->assertSame(0, $DB->count_records('local_eventrelay_outbox'));

        $this->getDataGenerator()->create_user();
        provider::delete_data_for_all_users_in_context(\context_course::instance(SITEID));
        $this->assertSame(1, $DB->count_records('local_eventrelay_outbox'));
        provider::delete_data_for_all_users_in_context($system);
        $this->assertSame(0, $DB->count_records('local_eventrelay_outbox'));
    }
}
