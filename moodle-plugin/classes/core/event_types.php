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
 * The event types the relay carries: Moodle event class, CloudEvent type, routing key and schema id.
 *
 * This is the table of DESIGN.md section 2. It is plain PHP and uses nothing from Moodle.
 *
 * @package    local_eventrelay
 * @copyright  2026 Moodle Event Relay contributors
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */
class event_types {
    /** @var string Prefix shared by every CloudEvent type. */
    public const TYPE_PREFIX = 'moodle.';

    /** @var string Prefix of every schema id; the type and the version follow. */
    public const SCHEMA_ID_PREFIX = 'urn:moodle-event-relay:schema:';

    /** @var int Version of the per-type schemas this code produces. */
    public const SCHEMA_VERSION = 1;

    /**
     * @var string[] Moodle event class (fully qualified, without the leading backslash) => CloudEvent type.
     */
    public const TYPES = [
        'core\\event\\user_created' => 'moodle.user.created',
        'core\\event\\user_updated' => 'moodle.user.updated',
        'core\\event\\user_deleted' => 'moodle.user.deleted',
        'core\\event\\user_enrolment_created' => 'moodle.enrolment.created',
        'core\\event\\user_enrolment_updated' => 'moodle.enrolment.updated',
        'core\\event\\user_enrolment_deleted' => 'moodle.enrolment.deleted',
        'core\\event\\role_assigned' => 'moodle.role.assigned',
        'core\\event\\role_unassigned' => 'moodle.role.unassigned',
        'core\\event\\cohort_member_added' => 'moodle.cohort.member_added',
        'core\\event\\cohort_member_removed' => 'moodle.cohort.member_removed',
        'core\\event\\course_completed' => 'moodle.completion.course_completed',
        'core\\event\\course_module_completion_updated' => 'moodle.completion.module_updated',
    ];

    /**
     * Returns a Moodle event class name in the canonical form used by the relay: with one leading backslash.
     *
     * @param string $classname Class name with or without the leading backslash, e.g. "core\event\user_created".
     * @return string The same class with exactly one leading backslash, e.g. "\core\event\user_created".
     */
    public static function normalise_class(string $classname): string {
        return '\\' . ltrim(trim($classname), '\\');
    }

    /**
     * Returns the CloudEvent type for a Moodle event class.
     *
     * @param string $classname Moodle event class, with or without the leading backslash.
     * @return string|null The type, e.g. "moodle.user.created", or null when the class is not relayed.
     */
    public static function type_for_class(string $classname): ?string {
        $key = ltrim(trim($classname), '\\');
        return self::TYPES[$key] ?? null;
    }

    /**
     * Returns the Moodle event class for a CloudEvent type.
     *
     * @param string $type CloudEvent type, e.g. "moodle.user.created".
     * @return string|null The class with its leading backslash, e.g. "\core\event\user_created", or null when unknown.
     */
    public static function class_for_type(string $type): ?string {
        $classname = array_search($type, self::TYPES, true);
        return $classname === false ? null : '\\' . $classname;
    }

    /**
     * Tells whether a Moodle event class is one the relay carries.
     *
     * @param string $classname Moodle event class, with or without the leading backslash.
     * @return bool True when the class is in the table.
     */
    public static function is_known_class(string $classname): bool {
        return self::type_for_class($classname) !== null;
    }

    /**
     * Tells whether a CloudEvent type is one the relay carries.
     *
     * @param string $type CloudEvent type.
     * @return bool True when the type is in the table.
     */
    public static function is_known_type(string $type): bool {
        return in_array($type, self::TYPES, true);
    }

    /**
     * Returns every CloudEvent type, in the order of the table.
     *
     * @return string[] The 12 types, e.g. ["moodle.user.created", ...].
     */
    public static function all_types(): array {
        return array_values(self::TYPES);
    }

    /**
     * Returns every Moodle event class the relay carries, in the order of the table.
     *
     * @return string[] Class names with their leading backslash, e.g. ["\core\event\user_created", ...].
     */
    public static function all_classes(): array {
        return array_map(function (string $classname): string {
            return '\\' . $classname;
        }, array_keys(self::TYPES));
    }

    /**
     * Returns the routing key suffix of a type: the type without "moodle.", e.g. "user.created".
     *
     * @param string $type CloudEvent type.
     * @return string The suffix, "<entity>.<action>".
     * @throws \InvalidArgumentException When the type is unknown.
     */
    public static function routing_suffix(string $type): string {
        self::require_known_type($type);
        return substr($type, strlen(self::TYPE_PREFIX));
    }

    /**
     * Returns the entity part of a type, e.g. "user" for "moodle.user.created".
     *
     * @param string $type CloudEvent type.
     * @return string The entity: user, enrolment, role, cohort or completion.
     * @throws \InvalidArgumentException When the type is unknown.
     */
    public static function entity(string $type): string {
        return explode('.', self::routing_suffix($type), 2)[0];
    }

    /**
     * Returns the routing key of an event on the ingest exchange: "<site>.<entity>.<action>".
     *
     * @param string $siteid The site id configured in the plugin, e.g. "lms-prod".
     * @param string $type CloudEvent type, e.g. "moodle.user.created".
     * @return string The routing key, e.g. "lms-prod.user.created".
     * @throws \InvalidArgumentException When the site id is not valid or the type is unknown.
     */
    public static function routing_key(string $siteid, string $type): string {
        return site_validator::validate_site_id($siteid) . '.' . self::routing_suffix($type);
    }

    /**
     * Returns the `$id` of the JSON Schema of a type, which is also the event's `dataschema`.
     *
     * @param string $type CloudEvent type, e.g. "moodle.user.created".
     * @return string The schema id, e.g. "urn:moodle-event-relay:schema:moodle.user.created:1".
     * @throws \InvalidArgumentException When the type is unknown.
     */
    public static function schema_id(string $type): string {
        self::require_known_type($type);
        return self::SCHEMA_ID_PREFIX . $type . ':' . self::SCHEMA_VERSION;
    }

    /**
     * Throws unless the type is in the table.
     *
     * @param string $type CloudEvent type.
     * @return void
     * @throws \InvalidArgumentException When the type is unknown.
     */
    private static function require_known_type(string $type): void {
        if (!self::is_known_type($type)) {
            throw new \InvalidArgumentException("Unknown event type '{$type}'");
        }
    }
}
