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

namespace local_eventrelay\check;

use core\check\check;
use core\check\result;
use local_eventrelay\core\amqp_library;
use local_eventrelay\core\publish_exception;
use local_eventrelay\core\publisher;
use local_eventrelay\local\config;

/**
 * Check: php-amqplib is installed, the broker accepts the plugin's credentials and the exchange exists.
 *
 * @package    local_eventrelay
 * @copyright  2026 Moodle Event Relay contributors
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */
class broker extends check {
    /**
     * Returns a link to the plugin's settings.
     *
     * @return \action_link|null The link.
     */
    public function get_action_link(): ?\action_link {
        return new \action_link(
            new \moodle_url('/admin/settings.php', ['section' => 'local_eventrelay']),
            get_string('settings')
        );
    }

    /**
     * Connects to the broker and declares the exchange passively.
     *
     * @return result OK, or ERROR saying what is wrong (never the password).
     */
    public function get_result(): result {
        if (!amqp_library::load()) {
            return new result(
                result::ERROR,
                get_string('checkbroker_nolibrary', 'local_eventrelay'),
                amqp_library::INSTALL_HINT
            );
        }
        $config = config::load();
        if (!$config->is_recording() || !$config->has_broker()) {
            return new result(result::WARNING, get_string('checkbroker_notconfigured', 'local_eventrelay'));
        }
        $settings = $config->connection();
        $publisher = new publisher($settings);
        try {
            $publisher->ping();
        } catch (publish_exception $e) {
            return new result(
                result::ERROR,
                get_string('checkbroker_error', 'local_eventrelay', $settings->describe()),
                s($e->getMessage())
            );
        } finally {
            $publisher->close();
        }
        return new result(result::OK, get_string('checkbroker_ok', 'local_eventrelay', (object) [
            'broker' => $settings->describe(),
            'exchange' => $settings->exchange,
        ]));
    }
}
