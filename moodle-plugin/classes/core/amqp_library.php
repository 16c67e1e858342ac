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
 * Finds and loads php-amqplib, the plugin's declared AMQP client, without bundling it.
 *
 * Looked for, in order: already loaded (e.g. by Moodle's or the site's composer autoloader), the plugin's
 * own composer folder (`composer install` in the plugin directory makes vendor/autoload.php), and the
 * system's include path (Debian's php-amqplib package installs PhpAmqpLib/autoload.php there).
 *
 * @package    local_eventrelay
 * @copyright  2026 Moodle Event Relay contributors
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */
class amqp_library {
    /** @var string A class every supported php-amqplib version has. */
    public const PROBE_CLASS = '\\PhpAmqpLib\\Connection\\AMQPStreamConnection';

    /** @var string How an operator installs the library, for messages. */
    public const INSTALL_HINT = 'Install php-amqplib: run "composer install" in the plugin folder (local/eventrelay), '
        . 'or install the system package (Debian/Ubuntu: apt-get install php-amqplib).';

    /**
     * Loads the library if it can be found.
     *
     * @return bool True when its classes can be used.
     */
    public static function load(): bool {
        if (class_exists(self::PROBE_CLASS)) {
            return true;
        }
        $vendor = dirname(__DIR__, 2) . '/vendor/autoload.php';
        if (is_readable($vendor)) {
            require_once($vendor);
            if (class_exists(self::PROBE_CLASS)) {
                return true;
            }
        }
        $system = stream_resolve_include_path('PhpAmqpLib/autoload.php');
        if ($system !== false) {
            require_once($system);
        }
        return class_exists(self::PROBE_CLASS);
    }

    /**
     * Loads the library or says how to install it.
     *
     * @return void
     * @throws publish_exception When the library cannot be found.
     */
    public static function require(): void {
        if (!self::load()) {
            throw new publish_exception('php-amqplib is not installed. ' . self::INSTALL_HINT);
        }
    }
}
