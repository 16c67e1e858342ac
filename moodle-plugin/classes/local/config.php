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

use local_eventrelay\core\connection_settings;
use local_eventrelay\core\drainer;
use local_eventrelay\core\envelope_builder;
use local_eventrelay\core\site_validator;
use local_eventrelay\core\snapshot;

/**
 * The plugin's settings as typed values (Moodle glue: reads get_config()).
 *
 * Setting names are a contract: sites may set them with admin/cli/cfg.php or $CFG->forced_plugin_settings.
 *
 * @package    local_eventrelay
 * @copyright  2026 Moodle Event Relay contributors
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */
class config {
    /** @var string The plugin's component name. */
    public const COMPONENT = 'local_eventrelay';

    /** @var int Default seconds after which the oldest outbox row makes the age check warn. */
    public const DEFAULT_AGE_WARNING = 600;

    /** @var int Default seconds after which the oldest outbox row makes the age check fail. */
    public const DEFAULT_AGE_ERROR = 3600;

    /** @var \stdClass The raw settings. */
    private $raw;

    /** @var bool[] Event type => whether it is recorded, as asked so far. */
    private $relays = [];

    /** @var envelope_builder|null The builder, once asked for. */
    private $builder = null;

    /** @var string The wwwroot the builder was made for. */
    private $builderwwwroot = '';

    /** @var envelope_builder[] Site id => builder, for rows recorded under another site id. */
    private $otherbuilders = [];

    /** @var array|null The settings {@see config::load()} read last. */
    private static $lastread = null;

    /** @var config|null What {@see config::load()} made of them. */
    private static $lastloaded = null;

    /**
     * Wraps raw settings.
     *
     * @param \stdClass $raw What get_config('local_eventrelay') returns.
     */
    public function __construct(\stdClass $raw) {
        $this->raw = $raw;
    }

    /**
     * Reads the current settings (get_config() is cached per request by Moodle).
     *
     * The observer calls this for every event: while the settings are the same as last time, the same object
     * answers, with what it worked out from them (the types it relays, the envelope builder) kept. A setting
     * changed in the same request (set_config) makes a new one.
     *
     * @return self The settings.
     */
    public static function load(): self {
        $raw = (array) get_config(self::COMPONENT);
        if (self::$lastloaded === null || self::$lastread !== $raw) {
            self::$lastread = $raw;
            self::$lastloaded = new self((object) $raw);
        }
        return self::$lastloaded;
    }

    /**
     * Returns one raw setting.
     *
     * @param string $name Setting name.
     * @param mixed $default Value when unset.
     * @return mixed The value.
     */
    private function get(string $name, $default) {
        return isset($this->raw->$name) && $this->raw->$name !== '' ? $this->raw->$name : $default;
    }

    /**
     * Returns the site id, or '' when not configured.
     *
     * @return string The site id.
     */
    public function site_id(): string {
        return trim((string) $this->get('siteid', ''));
    }

    /**
     * Tells whether events are recorded at all: only once a valid site id is set.
     *
     * @return bool True when the site id is valid.
     */
    public function is_recording(): bool {
        return preg_match(site_validator::SITE_ID_PATTERN, $this->site_id()) === 1;
    }

    /**
     * Tells whether the broker is configured (a host is set).
     *
     * @return bool True when a host is set.
     */
    public function has_broker(): bool {
        return trim((string) $this->get('host', '')) !== '';
    }

    /**
     * Returns the event types to relay; null for all.
     *
     * @return string[]|null The types, or null when the setting is empty.
     */
    public function enabled_types(): ?array {
        $types = self::parse_list((string) $this->get('events', ''));
        return $types ? $types : null;
    }

    /**
     * Tells whether events of a type are recorded.
     *
     * @param string $type CloudEvent type.
     * @return bool True when recording and the type is enabled.
     */
    public function relays(string $type): bool {
        if (!isset($this->relays[$type])) {
            $types = $this->enabled_types();
            $this->relays[$type] = $this->is_recording() && ($types === null || in_array($type, $types, true));
        }
        return $this->relays[$type];
    }

    /**
     * Returns the user fields user snapshots may carry.
     *
     * @return string[] Field names.
     */
    public function snapshot_fields(): array {
        if (!isset($this->raw->snapshotfields)) {
            return snapshot::DEFAULT_USER_FIELDS;
        }
        return self::parse_list((string) $this->raw->snapshotfields);
    }

    /**
     * Returns the envelope builder for this site.
     *
     * @return envelope_builder The builder.
     * @throws \InvalidArgumentException When the site id or wwwroot is invalid.
     */
    public function builder(): envelope_builder {
        global $CFG;
        // Built once per request and settings: a bulk job builds thousands of envelopes with it.
        if ($this->builder === null || $this->builderwwwroot !== $CFG->wwwroot) {
            $this->builder = new envelope_builder($this->site_id(), $CFG->wwwroot, $this->snapshot_fields());
            $this->builderwwwroot = $CFG->wwwroot;
        }
        return $this->builder;
    }

    /**
     * Returns the envelope builder of a site id: this site's builder for its own id, else one made for that id
     * (an event recorded before the site id was changed is published under the id it was recorded with).
     *
     * @param string $siteid The site id, from an outbox row's routing key.
     * @return envelope_builder The builder.
     * @throws \InvalidArgumentException When the site id or wwwroot is invalid.
     */
    public function builder_for_site(string $siteid): envelope_builder {
        global $CFG;
        if ($siteid === $this->site_id()) {
            return $this->builder();
        }
        if (!isset($this->otherbuilders[$siteid])) {
            $this->otherbuilders[$siteid] = new envelope_builder($siteid, $CFG->wwwroot, $this->snapshot_fields());
        }
        return $this->otherbuilders[$siteid];
    }

    /**
     * Returns the broker connection settings.
     *
     * @return connection_settings The settings.
     */
    public function connection(): connection_settings {
        $usetls = !empty($this->raw->usetls);
        return new connection_settings(
            trim((string) $this->get('host', '')),
            (int) $this->get('port', $usetls ? 5671 : 5672),
            (string) $this->get('vhost', '/'),
            (string) $this->get('user', ''),
            (string) $this->get('password', ''),
            $usetls,
            (string) $this->get('exchange', connection_settings::DEFAULT_EXCHANGE)
        );
    }

    /**
     * Returns the batch size of the drain.
     *
     * @return int Rows per batch, 1 to 5000.
     */
    public function batch_size(): int {
        return max(1, min(5000, (int) $this->get('batchsize', drainer::DEFAULT_BATCH_SIZE)));
    }

    /**
     * Returns the age thresholds of the outbox check.
     *
     * @return int[] [warning seconds, error seconds].
     */
    public function age_thresholds(): array {
        return [(int) $this->get('agewarning', self::DEFAULT_AGE_WARNING), (int) $this->get('ageerror', self::DEFAULT_AGE_ERROR)];
    }

    /**
     * Splits a comma-separated setting.
     *
     * @param string $value E.g. "moodle.user.created, moodle.user.updated".
     * @return string[] The trimmed, non-empty items.
     */
    public static function parse_list(string $value): array {
        return array_values(array_filter(array_map('trim', explode(',', $value)), 'strlen'));
    }
}
