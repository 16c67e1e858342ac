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
 * Settings of local_eventrelay (Site administration > Plugins > Local plugins > Event relay).
 *
 * @package    local_eventrelay
 * @copyright  2026 Moodle Event Relay contributors
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */

defined('MOODLE_INTERNAL') || die();

if ($hassiteconfig) {
    $settings = new admin_settingpage('local_eventrelay', new lang_string('pluginname', 'local_eventrelay'));
    $ADMIN->add('localplugins', $settings);

    if ($ADMIN->fulltree) {
        $component = 'local_eventrelay';
        if (!\local_eventrelay\core\amqp_library::load()) {
            $settings->add(new admin_setting_heading(
                "{$component}/nolibrary",
                '',
                $OUTPUT->notification(
                    get_string('nolibrary', $component, \local_eventrelay\core\amqp_library::INSTALL_HINT),
                    \core\output\notification::NOTIFY_ERROR
                )
            ));
        }

        $settings->add(new admin_setting_heading(
            "{$component}/brokerheading",
            new lang_string('brokerheading', $component),
            new lang_string('brokerheading_desc', $component)
        ));
        $settings->add(new admin_setting_configtext(
            "{$component}/host",
            new lang_string('host', $component),
            new lang_string('host_desc', $component),
            '',
            PARAM_HOST
        ));
        $settings->add(new admin_setting_configtext(
            "{$component}/port",
            new lang_string('port', $component),
            new lang_string('port_desc', $component),
            5672,
            PARAM_INT
        ));
        $settings->add(new admin_setting_configtext(
            "{$component}/vhost",
            new lang_string('vhost', $component),
            new lang_string('vhost_desc', $component),
            '/',
            PARAM_RAW_TRIMMED
        ));
        $settings->add(new admin_setting_configtext(
            "{$component}/user",
            new lang_string('user', $component),
            new lang_string('user_desc', $component),
            '',
            PARAM_RAW_TRIMMED
        ));
        $settings->add(new admin_setting_configpasswordunmask(
            "{$component}/password",
            new lang_string('password', $component),
            new lang_string('password_desc', $component),
            ''
        ));
        $settings->add(new admin_setting_configcheckbox(
            "{$component}/usetls",
            new lang_string('usetls', $component),
            new lang_string('usetls_desc', $component),
            0
        ));
        $settings->add(new admin_setting_configtext(
            "{$component}/exchange",
            new lang_string('exchange', $component),
            new lang_string('exchange_desc', $component),
            \local_eventrelay\core\connection_settings::DEFAULT_EXCHANGE,
            PARAM_RAW_TRIMMED
        ));

        $settings->add(new admin_setting_heading(
            "{$component}/eventsheading",
            new lang_string('eventsheading', $component),
            ''
        ));
        $settings->add(new admin_setting_configtext(
            "{$component}/siteid",
            new lang_string('siteid', $component),
            new lang_string('siteid_desc', $component),
            '',
            '/^([a-z0-9][a-z0-9-]{0,31})?$/'
        ));
        $settings->add(new admin_setting_configtext(
            "{$component}/batchsize",
            new lang_string('batchsize', $component),
            new lang_string('batchsize_desc', $component),
            \local_eventrelay\core\drainer::DEFAULT_BATCH_SIZE,
            PARAM_INT
        ));
        $settings->add(new \local_eventrelay\admin\setting_event_types(
            "{$component}/events",
            new lang_string('events', $component),
            new lang_string('events_desc', $component, implode(', ', \local_eventrelay\core\event_types::all_types())),
            '',
            PARAM_RAW_TRIMMED
        ));
        $fields = \local_eventrelay\core\snapshot::user_field_names();
        $settings->add(new admin_setting_configmulticheckbox(
            "{$component}/snapshotfields",
            new lang_string('snapshotfields', $component),
            new lang_string('snapshotfields_desc', $component),
            array_fill_keys(\local_eventrelay\core\snapshot::DEFAULT_USER_FIELDS, 1),
            array_combine($fields, $fields)
        ));

        $settings->add(new admin_setting_heading(
            "{$component}/checksheading",
            new lang_string('checksheading', $component),
            ''
        ));
        $settings->add(new admin_setting_configduration(
            "{$component}/agewarning",
            new lang_string('agewarning', $component),
            new lang_string('agewarning_desc', $component),
            \local_eventrelay\local\config::DEFAULT_AGE_WARNING
        ));
        $settings->add(new admin_setting_configduration(
            "{$component}/ageerror",
            new lang_string('ageerror', $component),
            new lang_string('ageerror_desc', $component),
            \local_eventrelay\local\config::DEFAULT_AGE_ERROR
        ));
    }
}
