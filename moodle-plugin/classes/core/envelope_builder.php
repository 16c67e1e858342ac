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
 * Builds the CloudEvents 1.0 envelope of a Moodle event, as the schemas in schemas/ define it.
 *
 * Plain PHP: it takes what `\core\event\base::get_data()` returns and a snapshot row, and returns the
 * event as a PHP array ready for {@see json_encoder::encode()}. Nothing here touches Moodle. The parts
 * have their own classes: {@see site_validator}, {@see sequence}, {@see snapshot}, {@see other_caster}
 * and {@see subject}.
 *
 * @package    local_eventrelay
 * @copyright  2026 Moodle Event Relay contributors
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */
class envelope_builder {
    /** @var string CloudEvents version. */
    public const SPEC_VERSION = '1.0';

    /** @var string Media type of `data`. */
    public const DATA_CONTENT_TYPE = 'application/json';

    /** @var string The site id, e.g. "lms-prod". */
    private $siteid;

    /** @var string The site's wwwroot, the events' `source`. */
    private $wwwroot;

    /** @var string[] User fields user snapshots may carry, in the schema's order, "id" included. */
    private $userfields;

    /**
     * Creates a builder for one site.
     *
     * @param string $siteid The site id configured in the plugin: ^[a-z0-9][a-z0-9-]{0,31}$, no dots.
     * @param string $wwwroot The site's wwwroot, an http or https URL; it becomes every event's `source`.
     * @param string[]|null $userfields User fields the admin allows in user snapshots; null for
     *     {@see snapshot::DEFAULT_USER_FIELDS}. Names the schema does not define (such as "password")
     *     are ignored; "id" is always added.
     * @throws \InvalidArgumentException When the site id or the wwwroot is not valid, or a field name is not a string.
     */
    public function __construct(string $siteid, string $wwwroot, ?array $userfields = null) {
        $this->siteid = site_validator::validate_site_id($siteid);
        $this->wwwroot = site_validator::validate_wwwroot($wwwroot);
        $this->userfields = self::normalise_user_fields($userfields ?? snapshot::DEFAULT_USER_FIELDS);
    }

    /**
     * Returns the site id.
     *
     * @return string The site id, e.g. "lms-prod".
     */
    public function get_site_id(): string {
        return $this->siteid;
    }

    /**
     * Returns the wwwroot, the `source` of every event.
     *
     * @return string The URL.
     */
    public function get_wwwroot(): string {
        return $this->wwwroot;
    }

    /**
     * Returns the user fields user snapshots carry (after dropping names the schema does not know).
     *
     * @return string[] Field names in the schema's order, "id" first.
     */
    public function get_user_fields(): array {
        return $this->userfields;
    }

    /**
     * Builds the CloudEvent of a Moodle event.
     *
     * @param array $eventdata What `$event->get_data()` returns: eventname, objectid, crud, contextid,
     *     contextlevel, contextinstanceid, userid, courseid, relateduserid, anonymous, other, timecreated.
     *     Values may be ints or numeric strings.
     * @param array|object $snapshot The entity as it was, a DB-row-like array or record shaped as the type's
     *     snapshot schema (user record, user_enrolments row with courseid and enrol, role assignment with
     *     contextid, cohort membership, course_completions row, course_modules_completion row).
     * @param int $sequence The per-site sequence; 0 when not known yet (see {@see sequence::with_sequence()}).
     * @param string|null $id The event id to use (a lower-case UUID); null to make a new UUID v4.
     * @param bool $backfill True for events made from current state rather than from a Moodle event.
     * @return array The envelope, with keys in the contract's order.
     * @throws \InvalidArgumentException When the event class is not relayed, a required field is missing,
     *     a value cannot be cast, the id is not a lower-case UUID or the sequence is negative.
     */
    public function build(
        array $eventdata,
        array|object $snapshot,
        int $sequence = 0,
        ?string $id = null,
        bool $backfill = false
    ): array {
        $eventname = $eventdata['eventname'] ?? null;
        if (!is_string($eventname) || $eventname === '') {
            throw new \InvalidArgumentException('The event data has no eventname');
        }
        $type = event_types::type_for_class($eventname);
        if ($type === null) {
            throw new \InvalidArgumentException("Unknown event class '{$eventname}': it is not one the relay carries");
        }
        if ($id === null) {
            $id = uuid::v4();
        } else if (!uuid::is_valid($id)) {
            throw new \InvalidArgumentException('Invalid event id ' . json_encoder::quote($id) . ': it must be a lower-case UUID');
        }

        $data = $this->build_data($type, $eventdata, $snapshot, $backfill);

        return [
            'specversion' => self::SPEC_VERSION,
            'id' => $id,
            'source' => $this->wwwroot,
            'type' => $type,
            'subject' => subject::make($type, $data),
            'time' => gmdate('Y-m-d\TH:i:s\Z', $data['timecreated']),
            'datacontenttype' => self::DATA_CONTENT_TYPE,
            'dataschema' => event_types::schema_id($type),
            'moodlesite' => $this->siteid,
            'moodleevent' => event_types::normalise_class($eventname),
            'sequence' => sequence::format($sequence),
            'data' => $data,
        ];
    }

    /**
     * Makes the event's `data`: the Moodle event fields cast to the schema's types, and the snapshot.
     *
     * @param string $type CloudEvent type.
     * @param array $eventdata What `$event->get_data()` returns.
     * @param array|object $snapshot The snapshot row.
     * @param bool $backfill Whether to mark the event as made by the backfill.
     * @return array The data, with keys in the contract's order.
     * @throws \InvalidArgumentException When a required field is missing or a value cannot be cast.
     */
    private function build_data(string $type, array $eventdata, array|object $snapshot, bool $backfill): array {
        foreach (['contextid', 'crud', 'timecreated'] as $field) {
            if (!isset($eventdata[$field])) {
                throw new \InvalidArgumentException("The event data has no {$field}");
            }
        }
        $crud = cast::to_string($eventdata['crud'], 'crud');
        if (!in_array($crud, ['c', 'r', 'u', 'd'], true)) {
            throw new \InvalidArgumentException("Invalid crud '{$crud}': it must be c, r, u or d");
        }
        $timecreated = cast::to_int($eventdata['timecreated'], 'timecreated');
        if ($timecreated < 0) {
            throw new \InvalidArgumentException("Invalid timecreated {$timecreated}: it must not be negative");
        }
        $kind = snapshot::kind_for_type($type);
        $allowed = $kind === snapshot::KIND_USER ? $this->userfields : null;

        $data = [
            'objectid' => self::nullable_int($eventdata, 'objectid'),
            'userid' => self::nullable_int($eventdata, 'userid'),
            'relateduserid' => self::nullable_int($eventdata, 'relateduserid'),
            'courseid' => self::nullable_int($eventdata, 'courseid') ?? 0,
            'contextid' => cast::to_int($eventdata['contextid'], 'contextid'),
            'crud' => $crud,
            'anonymous' => self::nullable_int($eventdata, 'anonymous') ?? 0,
            'timecreated' => $timecreated,
            'other' => other_caster::cast($type, $eventdata['other'] ?? null),
            'snapshot' => snapshot::make($kind, $snapshot, $allowed),
        ];
        foreach (['contextlevel', 'contextinstanceid'] as $field) {
            $value = self::nullable_int($eventdata, $field);
            if ($value !== null) {
                $data[$field] = $value;
            }
        }
        if ($backfill) {
            $data['backfill'] = true;
        }
        return $data;
    }

    /**
     * Reads an optional integer field of the event data.
     *
     * @param array $eventdata The event data.
     * @param string $field The field name.
     * @return int|null The integer, or null when the field is missing or null.
     * @throws \InvalidArgumentException When the value is not an integer.
     */
    private static function nullable_int(array $eventdata, string $field): ?int {
        if (!isset($eventdata[$field])) {
            return null;
        }
        return cast::to_int($eventdata[$field], $field);
    }

    /**
     * Keeps the user field names the schema defines, in the schema's order, with "id" always first.
     *
     * @param array $userfields Field names as the admin chose them.
     * @return string[] The names kept.
     * @throws \InvalidArgumentException When a name is not a string.
     */
    private static function normalise_user_fields(array $userfields): array {
        $wanted = ['id'];
        foreach ($userfields as $field) {
            if (!is_string($field)) {
                throw new \InvalidArgumentException('User snapshot field names must be strings');
            }
            $wanted[] = strtolower(trim($field));
        }
        return array_values(array_intersect(snapshot::user_field_names(), $wanted));
    }
}
