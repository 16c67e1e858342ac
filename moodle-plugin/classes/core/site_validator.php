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
 * Checks the two settings that identify a site in every event: the site id (`moodlesite`, the first word
 * of every routing key) and the wwwroot (`source`).
 *
 * @package    local_eventrelay
 * @copyright  2026 Moodle Event Relay contributors
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */
class site_validator {
    /** @var string What a site id must look like: it is the first word of every routing key. */
    public const SITE_ID_PATTERN = '/^[a-z0-9][a-z0-9-]{0,31}$/D';

    /** @var string What `source` must look like: an http(s) URL without white space. */
    public const WWWROOT_PATTERN = '/^https?:\/\/[^\s]+$/D';

    /**
     * Checks a site id.
     *
     * @param string $siteid The candidate.
     * @return string The site id, unchanged.
     * @throws \InvalidArgumentException Naming the value when it does not match ^[a-z0-9][a-z0-9-]{0,31}$.
     */
    public static function validate_site_id(string $siteid): string {
        if (preg_match(self::SITE_ID_PATTERN, $siteid) !== 1) {
            throw new \InvalidArgumentException('Invalid site id ' . json_encoder::quote($siteid)
                . ': use 1 to 32 lower-case letters, digits and hyphens, starting with a letter or digit (no dots)');
        }
        return $siteid;
    }

    /**
     * Checks a wwwroot.
     *
     * @param string $wwwroot The candidate.
     * @return string The wwwroot, unchanged.
     * @throws \InvalidArgumentException Naming the value when it is not an http or https URL with a host.
     */
    public static function validate_wwwroot(string $wwwroot): string {
        $parts = parse_url($wwwroot);
        if (preg_match(self::WWWROOT_PATTERN, $wwwroot) !== 1 || !is_array($parts) || empty($parts['host'])) {
            throw new \InvalidArgumentException('Invalid wwwroot ' . json_encoder::quote($wwwroot)
                . ': it must be an http:// or https:// URL with a host');
        }
        return $wwwroot;
    }
}
