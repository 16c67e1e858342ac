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

namespace local_eventrelay\local;

/**
 * Builds the CloudEvents 1.0 envelope of a Moodle event, as the schemas in schemas/ define it.
 *
 * Plain PHP: it takes what `\core\event\base::get_data()` returns and a snapshot row, and returns the
 * event as a PHP array ready for {@see envelope_builder::to_json()}. Nothing here touches Moodle.
 *
 * @package    local_eventrelay
 * @copyright  2026 Moodle Event Relay contributors
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */
class envelope_builder {
    /** @var string CloudEvents version. */
    const SPEC_VERSION = '1.0';

    /** @var string Media type of `data`. */
    const DATA_CONTENT_TYPE = 'application/json';

    /** @var string What a site id must look like: it is the first word of every routing key. */
    const SITE_ID_PATTERN = '/^[a-z0-9][a-z0-9-]{0,31}$/D';

    /** @var string What `source` must look like: an http(s) URL without white space. */
    const WWWROOT_PATTERN = '/^https?:\/\/[^\s]+$/D';

    /** @var int Number of digits of the zero-padded `sequence`. */
    const SEQUENCE_DIGITS = 20;

    /** @var int JSON encoding flags of {@see envelope_builder::to_json()}. */
    const JSON_FLAGS = JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE | JSON_THROW_ON_ERROR;

    /**
     * @var string[] User fields a user snapshot carries when the admin has not chosen: identity and status
     * fields, no contact details beyond e-mail. "id" is always carried whatever the setting says.
     */
    const DEFAULT_USER_FIELDS = [
        'id',
        'username',
        'email',
        'idnumber',
        'auth',
        'firstname',
        'lastname',
        'institution',
        'department',
        'suspended',
        'deleted',
        'confirmed',
        'mnethostid',
        'picture',
        'timecreated',
        'timemodified',
    ];

    /**
     * @var array[] CloudEvent type => [key of `other` => cast]. Keys not listed are passed on as they are;
     * a null value stays null. The cast "userenrolment" is the user_enrolments row of an unenrolment.
     */
    const OTHER_CASTS = [
        'moodle.user.deleted' => [
            'username' => snapshot::CAST_STRING,
            'email' => snapshot::CAST_STRING,
            'idnumber' => snapshot::CAST_STRING,
            'picture' => snapshot::CAST_INT,
            'mnethostid' => snapshot::CAST_INT,
        ],
        'moodle.enrolment.created' => [
            'enrol' => snapshot::CAST_STRING,
        ],
        'moodle.enrolment.updated' => [
            'enrol' => snapshot::CAST_STRING,
        ],
        'moodle.enrolment.deleted' => [
            'enrol' => snapshot::CAST_STRING,
            'userenrolment' => 'userenrolment',
        ],
        'moodle.role.assigned' => [
            'id' => snapshot::CAST_INT,
            'component' => snapshot::CAST_STRING,
            'itemid' => snapshot::CAST_INT,
        ],
        'moodle.role.unassigned' => [
            'id' => snapshot::CAST_INT,
            'component' => snapshot::CAST_STRING,
            'itemid' => snapshot::CAST_INT,
        ],
        'moodle.completion.course_completed' => [
            'relateduserid' => snapshot::CAST_INT,
        ],
        'moodle.completion.module_updated' => [
            'relateduserid' => snapshot::CAST_INT,
            'completionstate' => snapshot::CAST_INT,
            'overrideby' => snapshot::CAST_NULLABLE_INT,
        ],
    ];

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
     *     {@see envelope_builder::DEFAULT_USER_FIELDS}. Names the schema does not define (such as "password")
     *     are ignored; "id" is always added.
     * @throws \InvalidArgumentException When the site id or the wwwroot is not valid, or a field name is not a string.
     */
    public function __construct(string $siteid, string $wwwroot, ?array $userfields = null) {
        $this->siteid = self::validate_site_id($siteid);
        $this->wwwroot = self::validate_wwwroot($wwwroot);
        $this->userfields = self::normalise_user_fields($userfields ?? self::DEFAULT_USER_FIELDS);
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
     * Checks a site id.
     *
     * @param string $siteid The candidate.
     * @return string The site id, unchanged.
     * @throws \InvalidArgumentException Naming the value when it does not match ^[a-z0-9][a-z0-9-]{0,31}$.
     */
    public static function validate_site_id(string $siteid): string {
        if (preg_match(self::SITE_ID_PATTERN, $siteid) !== 1) {
            throw new \InvalidArgumentException('Invalid site id ' . self::quote($siteid)
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
            throw new \InvalidArgumentException('Invalid wwwroot ' . self::quote($wwwroot)
                . ': it must be an http:// or https:// URL with a host');
        }
        return $wwwroot;
    }

    /**
     * Formats a sequence number as the contract's `sequence`: a decimal string zero-padded to 20 digits.
     *
     * @param int $sequence The number, e.g. an outbox row id; 0 or more.
     * @return string E.g. "00000000000000000042".
     * @throws \InvalidArgumentException When the number is negative.
     */
    public static function format_sequence(int $sequence): string {
        if ($sequence < 0) {
            throw new \InvalidArgumentException("Invalid sequence {$sequence}: it must not be negative");
        }
        return str_pad((string) $sequence, self::SEQUENCE_DIGITS, '0', STR_PAD_LEFT);
    }

    /**
     * Returns a built envelope with its `sequence` set or replaced (the plugin learns it only after the
     * outbox insert). Nothing else changes; the id in particular stays.
     *
     * @param array $envelope An envelope made by {@see envelope_builder::build()}.
     * @param int $sequence The number, 0 or more.
     * @return array The envelope with the new sequence, in the same place among the attributes.
     * @throws \InvalidArgumentException When the number is negative or the array is not an envelope.
     */
    public static function with_sequence(array $envelope, int $sequence): array {
        if (!array_key_exists('sequence', $envelope) || !array_key_exists('id', $envelope)) {
            throw new \InvalidArgumentException('Not an event envelope: it has no id or sequence');
        }
        $envelope['sequence'] = self::format_sequence($sequence);
        return $envelope;
    }

    /**
     * Encodes an envelope as the JSON body of the message: slashes and Unicode unescaped.
     *
     * @param array $envelope An envelope made by {@see envelope_builder::build()}.
     * @return string The JSON text, on one line.
     * @throws \JsonException When the envelope cannot be encoded (e.g. invalid UTF-8).
     */
    public static function to_json(array $envelope): string {
        return json_encode($envelope, self::JSON_FLAGS);
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
     * @param int $sequence The per-site sequence; 0 when not known yet (see {@see envelope_builder::with_sequence()}).
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
            throw new \InvalidArgumentException('Invalid event id ' . self::quote($id) . ': it must be a lower-case UUID');
        }

        $data = $this->build_data($type, $eventdata, $snapshot, $backfill);

        return [
            'specversion' => self::SPEC_VERSION,
            'id' => $id,
            'source' => $this->wwwroot,
            'type' => $type,
            'subject' => self::subject($type, $data),
            'time' => gmdate('Y-m-d\TH:i:s\Z', $data['timecreated']),
            'datacontenttype' => self::DATA_CONTENT_TYPE,
            'dataschema' => event_types::schema_id($type),
            'moodlesite' => $this->siteid,
            'moodleevent' => event_types::normalise_class($eventname),
            'sequence' => self::format_sequence($sequence),
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
        $crud = snapshot::to_string($eventdata['crud'], 'crud');
        if (!in_array($crud, ['c', 'r', 'u', 'd'], true)) {
            throw new \InvalidArgumentException("Invalid crud '{$crud}': it must be c, r, u or d");
        }
        $timecreated = snapshot::to_int($eventdata['timecreated'], 'timecreated');
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
            'contextid' => snapshot::to_int($eventdata['contextid'], 'contextid'),
            'crud' => $crud,
            'anonymous' => self::nullable_int($eventdata, 'anonymous') ?? 0,
            'timecreated' => $timecreated,
            'other' => self::build_other($type, $eventdata['other'] ?? null),
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
     * Makes `data.other`: null, or an object with the type's known keys cast.
     *
     * @param string $type CloudEvent type.
     * @param mixed $other The event's `other`: null, an array or an object.
     * @return array|\stdClass|null Null, a non-empty associative array, or a stdClass (so that it encodes as {}).
     * @throws \InvalidArgumentException When `other` is a scalar or a known key cannot be cast.
     */
    private static function build_other(string $type, $other) {
        if ($other === null) {
            return null;
        }
        if (is_object($other)) {
            $other = self::object_to_array($other);
        }
        if (!is_array($other)) {
            throw new \InvalidArgumentException('The event data other must be null or an array');
        }
        foreach (self::OTHER_CASTS[$type] ?? [] as $key => $cast) {
            if (!array_key_exists($key, $other) || $other[$key] === null) {
                continue;
            }
            if ($cast === 'userenrolment') {
                $other[$key] = self::cast_user_enrolment($other[$key]);
            } else {
                $other[$key] = snapshot::cast($other[$key], $cast, "other.{$key}");
            }
        }
        if ($other === [] || array_is_list($other)) {
            // A JSON object either way: {} rather than [], {"0": ...} rather than [...].
            return (object) $other;
        }
        return $other;
    }

    /**
     * Casts the user_enrolments row Moodle passes in `other.userenrolment` of an unenrolment:
     * ids, times and status to int, enrol to string, lastenrol to bool; anything else as it is.
     *
     * @param mixed $row The row, an array or an object.
     * @return array|\stdClass The row cast; a stdClass when empty (so that it encodes as {}).
     * @throws \InvalidArgumentException When the row is not an array or a value cannot be cast.
     */
    private static function cast_user_enrolment($row) {
        if (is_object($row)) {
            $row = self::object_to_array($row);
        }
        if (!is_array($row)) {
            throw new \InvalidArgumentException('other.userenrolment must be an array');
        }
        foreach ($row as $key => $value) {
            if ($value === null || !is_string($key)) {
                continue;
            }
            $name = "other.userenrolment.{$key}";
            if ($key === 'lastenrol') {
                $row[$key] = snapshot::to_bool($value, $name);
            } else if ($key === 'enrol') {
                $row[$key] = snapshot::to_string($value, $name);
            } else if ($key === 'status' || preg_match('/^(?:.*id|time.*)$/D', $key) === 1) {
                $row[$key] = snapshot::to_int($value, $name);
            }
        }
        return $row === [] ? new \stdClass() : $row;
    }

    /**
     * Makes the `subject` from the data.
     *
     * @param string $type CloudEvent type.
     * @param array $data The event's data as {@see envelope_builder::build_data()} made it.
     * @return string E.g. "user/42", "course/7/user/42", "context/1/user/42", "cohort/3/user/42".
     * @throws \InvalidArgumentException When an id the subject needs is missing or not positive.
     */
    private static function subject(string $type, array $data): string {
        $user = self::positive($data['relateduserid'], 'relateduserid', $type);
        switch (event_types::entity($type)) {
            case 'user':
                return "user/{$user}";
            case 'cohort':
                return 'cohort/' . self::positive($data['objectid'], 'objectid', $type) . "/user/{$user}";
            case 'role':
                if ($data['courseid'] > 0) {
                    return "course/{$data['courseid']}/user/{$user}";
                }
                return 'context/' . self::positive($data['contextid'], 'contextid', $type) . "/user/{$user}";
            default:
                return 'course/' . self::positive($data['courseid'], 'courseid', $type) . "/user/{$user}";
        }
    }

    /**
     * Returns an id the subject needs, checking it is positive.
     *
     * @param int|null $value The id.
     * @param string $name Its field name, for the error message.
     * @param string $type CloudEvent type, for the error message.
     * @return int The id.
     * @throws \InvalidArgumentException When the id is null or not positive.
     */
    private static function positive(?int $value, string $name, string $type): int {
        if ($value === null || $value < 1) {
            throw new \InvalidArgumentException("A {$type} event needs a positive {$name} for its subject, got "
                . var_export($value, true));
        }
        return $value;
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
        return snapshot::to_int($eventdata[$field], $field);
    }

    /**
     * Turns an object into an array, and any object inside it (also inside arrays), as json_decode(..., true) would.
     *
     * @param object $object The object.
     * @return array Its public properties.
     */
    private static function object_to_array(object $object): array {
        $plain = function ($value) use (&$plain) {
            if (is_object($value)) {
                $value = get_object_vars($value);
            }
            if (is_array($value)) {
                foreach ($value as $key => $item) {
                    $value[$key] = $plain($item);
                }
            }
            return $value;
        };
        return $plain($object);
    }

    /**
     * Quotes a value for an error message, escaping control characters.
     *
     * @param string $value The value.
     * @return string The value in double quotes, JSON-escaped.
     */
    private static function quote(string $value): string {
        $json = json_encode($value, JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE | JSON_INVALID_UTF8_SUBSTITUTE);
        return $json === false ? '"?"' : $json;
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
