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

/**
 * Upgrade steps of local_eventrelay.
 *
 * @package    local_eventrelay
 * @copyright  2026 Moodle Event Relay contributors
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */

/**
 * Upgrades the plugin's database from an older version; every step ends with its savepoint.
 *
 * @param int $oldversion The version installed before.
 * @return bool Always true.
 */
function xmldb_local_eventrelay_upgrade($oldversion) {
    global $DB;
    $dbman = $DB->get_manager();

    if ($oldversion < 2026112400) {
        // First release: make sure the outbox exists as install.xml defines it (sites that ran a pre-release).
        $table = new xmldb_table('local_eventrelay_outbox');
        if (!$dbman->table_exists($table)) {
            $dbman->install_one_table_from_xmldb_file(__DIR__ . '/install.xml', 'local_eventrelay_outbox');
        }
        upgrade_plugin_savepoint(true, 2026112400, 'local', 'eventrelay');
    }

    if ($oldversion < 2026120100) {
        // Rows that went through the spool (the outbox insert failed) are marked until published.
        $table = new xmldb_table('local_eventrelay_outbox');
        $field = new xmldb_field('spooled', XMLDB_TYPE_INTEGER, '1', null, XMLDB_NOTNULL, null, '0', 'timelastattempt');
        if (!$dbman->field_exists($table, $field)) {
            $dbman->add_field($table, $field);
        }
        upgrade_plugin_savepoint(true, 2026120100, 'local', 'eventrelay');
    }

    return true;
}
