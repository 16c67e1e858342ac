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

use core_privacy\local\metadata\collection;
use core_privacy\local\metadata\provider as metadata_provider;
use core_privacy\local\request\approved_contextlist;
use core_privacy\local\request\approved_userlist;
use core_privacy\local\request\contextlist;
use core_privacy\local\request\core_userlist_provider;
use core_privacy\local\request\plugin\provider as plugin_provider;
use core_privacy\local\request\userlist;
use core_privacy\local\request\writer;

/**
 * Privacy provider: the outbox holds events about users until the broker confirms them, and the broker
 * (and the systems behind it) receives them.
 *
 * Outbox rows belong to the system context and to the user the event is about (column userid).
 *
 * @package    local_eventrelay
 * @copyright  2026 Moodle Event Relay contributors
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */
class provider implements core_userlist_provider, metadata_provider, plugin_provider {
    /** @var string The outbox table. */
    public const TABLE = 'local_eventrelay_outbox';

    /**
     * Describes the personal data the plugin stores and sends.
     *
     * @param collection $collection The collection to add to.
     * @return collection The collection.
     */
    public static function get_metadata(collection $collection): collection {
        $collection->add_database_table(self::TABLE, [
            'userid' => 'privacy:metadata:outbox:userid',
            'eventtype' => 'privacy:metadata:outbox:eventtype',
            'envelope' => 'privacy:metadata:outbox:envelope',
            'timecreated' => 'privacy:metadata:outbox:timecreated',
        ], 'privacy:metadata:outbox');
        $collection->add_external_location_link('broker', [
            'userid' => 'privacy:metadata:broker:userid',
            'snapshot' => 'privacy:metadata:broker:snapshot',
            'event' => 'privacy:metadata:broker:event',
        ], 'privacy:metadata:broker');
        return $collection;
    }

    /**
     * Returns the contexts holding data of a user: the system context when the outbox has rows about them.
     *
     * @param int $userid The user.
     * @return contextlist The contexts.
     */
    public static function get_contexts_for_userid(int $userid): contextlist {
        $contextlist = new contextlist();
        $sql = 'SELECT ctx.id FROM {context} ctx
                 WHERE ctx.contextlevel = :contextlevel
                   AND EXISTS (SELECT 1 FROM {' . self::TABLE . '} o WHERE o.userid = :userid)';
        $contextlist->add_from_sql($sql, ['contextlevel' => CONTEXT_SYSTEM, 'userid' => $userid]);
        return $contextlist;
    }

    /**
     * Returns the users with data in a context.
     *
     * @param userlist $userlist The list to fill.
     * @return void
     */
    public static function get_users_in_context(userlist $userlist): void {
        if ($userlist->get_context()->contextlevel != CONTEXT_SYSTEM) {
            return;
        }
        $userlist->add_from_sql('userid', 'SELECT userid FROM {' . self::TABLE . '} WHERE userid IS NOT NULL', []);
    }

    /**
     * Exports the outbox rows about a user.
     *
     * @param approved_contextlist $contextlist The approved contexts.
     * @return void
     */
    public static function export_user_data(approved_contextlist $contextlist): void {
        global $DB;
        $userid = $contextlist->get_user()->id;
        foreach ($contextlist->get_contexts() as $context) {
            if ($context->contextlevel != CONTEXT_SYSTEM) {
                continue;
            }
            $rows = $DB->get_records(self::TABLE, ['userid' => $userid], 'id ASC');
            if (!$rows) {
                continue;
            }
            $events = [];
            foreach ($rows as $row) {
                $events[] = (object) [
                    'eventtype' => $row->eventtype,
                    'timecreated' => \core_privacy\local\request\transform::datetime($row->timecreated),
                    'event' => self::event_of($row),
                ];
            }
            writer::with_context($context)->export_data(
                [get_string('pluginname', 'local_eventrelay'), get_string('privacy:outbox', 'local_eventrelay')],
                (object) ['events' => $events]
            );
        }
    }

    /**
     * Returns an outbox row's event as it will be published; as recorded when it cannot be built.
     *
     * @param \stdClass $row The row.
     * @return mixed The event, decoded.
     */
    private static function event_of(\stdClass $row) {
        try {
            $config = \local_eventrelay\local\config::load();
            return json_decode(\local_eventrelay\core\outbox_row::from_record($row)->body([$config, 'builder_for_site']));
        } catch (\Throwable $e) {
            return json_decode($row->envelope);
        }
    }

    /**
     * Deletes every outbox row when the system context is deleted for all users.
     *
     * @param \context $context The context.
     * @return void
     */
    public static function delete_data_for_all_users_in_context(\context $context): void {
        global $DB;
        if ($context->contextlevel == CONTEXT_SYSTEM) {
            $DB->delete_records(self::TABLE);
        }
    }

    /**
     * Deletes the outbox rows about a user.
     *
     * @param approved_contextlist $contextlist The approved contexts.
     * @return void
     */
    public static function delete_data_for_user(approved_contextlist $contextlist): void {
        global $DB;
        foreach ($contextlist->get_contexts() as $context) {
            if ($context->contextlevel == CONTEXT_SYSTEM) {
                $DB->delete_records(self::TABLE, ['userid' => $contextlist->get_user()->id]);
            }
        }
    }

    /**
     * Deletes the outbox rows about several users.
     *
     * @param approved_userlist $userlist The approved users.
     * @return void
     */
    public static function delete_data_for_users(approved_userlist $userlist): void {
        global $DB;
        if ($userlist->get_context()->contextlevel != CONTEXT_SYSTEM || !$userlist->get_userids()) {
            return;
        }
        [$insql, $params] = $DB->get_in_or_equal($userlist->get_userids(), SQL_PARAMS_NAMED);
        $DB->delete_records_select(self::TABLE, "userid {$insql}", $params);
    }
}
