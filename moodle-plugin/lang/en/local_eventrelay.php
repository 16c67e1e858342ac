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
 * English strings of local_eventrelay.
 *
 * @package    local_eventrelay
 * @copyright  2026 Moodle Event Relay contributors
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */

defined('MOODLE_INTERNAL') || die();

$string['ageerror'] = 'Outbox age error';
$string['ageerror_desc'] = 'The outbox check fails when the oldest unpublished event is older than this.';
$string['agewarning'] = 'Outbox age warning';
$string['agewarning_desc'] = 'The outbox check warns when the oldest unpublished event is older than this.';
$string['batchsize'] = 'Batch size';
$string['batchsize_desc'] = 'Events published per batch; the drain waits for the broker\'s confirms once per batch.';
$string['brokerheading'] = 'RabbitMQ broker';
$string['brokerheading_desc'] = 'Where events are published. The user needs only the right to publish to the exchange.';
$string['cachedef_drain'] = 'Whether a drain task is queued and whether the follower is alive';
$string['checkbroker'] = 'Event relay: broker reachable';
$string['checkbroker_error'] = 'The broker {$a} cannot be used.';
$string['checkbroker_nolibrary'] = 'The AMQP library php-amqplib is not installed: events are recorded but cannot be published.';
$string['checkbroker_notconfigured'] = 'The event relay is not configured: set the site id and the broker host.';
$string['checkbroker_ok'] = 'The broker {$a->broker} accepts the relay and the exchange {$a->exchange} exists.';
$string['checkfailed_attempts'] = 'Event relay: failed publish attempts';
$string['checkfailed_attempts_none'] = 'No event is waiting after a failed publish attempt.';
$string['checkfailed_attempts_summary'] = '{$a->count} events are waiting after failed publish attempts; the last attempt was at {$a->time}.';
$string['checkoutbox_age'] = 'Event relay: outbox age';
$string['checkoutbox_age_empty'] = 'The outbox is empty: every event has been published.';
$string['checkoutbox_age_summary'] = '{$a->count} events are waiting to be published; the oldest for {$a->age}.';
$string['checksheading'] = 'Status checks';
$string['checkspool'] = 'Event relay: events kept in the spool';
$string['checkspool_bad'] = '{$a->bad} spool files could not be read back and were set aside (*.bad): an administrator must look at them.';
$string['checkspool_details'] = 'Events the outbox insert could not take are written to {$a->dir} and moved back into the outbox by the next drain. Waiting in the spool: {$a->spool}. Moved back, not yet published: {$a->outbox}. Files set aside: {$a->bad}. Events that went through the spool since installation: {$a->total}.';
$string['checkspool_none'] = 'No event is waiting in the spool ({$a->total} went through it since installation, all published).';
$string['checkspool_waiting'] = '{$a->spool} events are in the spool and {$a->outbox} more were moved back into the outbox: the outbox insert failed for them; they are published by the next drain.';
$string['events'] = 'Events to relay';
$string['events_desc'] = 'Comma-separated event types to relay; leave empty to relay all of them: {$a}.';
$string['eventsheading'] = 'Events';
$string['eventsunknown'] = 'Unknown event types: {$a}.';
$string['exchange'] = 'Exchange';
$string['exchange_desc'] = 'The topic exchange events are published to, with the routing key <site id>.<entity>.<action>.';
$string['host'] = 'Host';
$string['host_desc'] = 'Host name or address of the RabbitMQ broker. Empty: events are recorded in the outbox but not published.';
$string['nolibrary'] = 'The AMQP library php-amqplib is missing, so events cannot be published. {$a}';
$string['password'] = 'Password';
$string['password_desc'] = 'Password of the broker user.';
$string['pluginname'] = 'Event relay';
$string['port'] = 'Port';
$string['port_desc'] = 'Broker port: 5672, or usually 5671 with TLS.';
$string['privacy:metadata:broker'] = 'Events about users (what changed, and a snapshot of the user\'s chosen profile fields) are published to a RabbitMQ broker, from where the systems connected to it receive them.';
$string['privacy:metadata:broker:event'] = 'The kind of change, its time, and the Moodle event data (ids of the user, course, context and actor).';
$string['privacy:metadata:broker:snapshot'] = 'The changed record as it was, with the user profile fields the administrator allowed.';
$string['privacy:metadata:broker:userid'] = 'The id of the user the event is about.';
$string['privacy:metadata:outbox'] = 'Events waiting to be published to the broker; each is deleted once the broker has confirmed it.';
$string['privacy:metadata:outbox:envelope'] = 'The event as recorded (its data and the record snapshot, limited to the fields events may carry), from which the published event is built.';
$string['privacy:metadata:outbox:eventtype'] = 'The kind of change.';
$string['privacy:metadata:outbox:timecreated'] = 'When the change happened.';
$string['privacy:metadata:outbox:userid'] = 'The id of the user the event is about.';
$string['privacy:outbox'] = 'Events waiting to be published';
$string['siteid'] = 'Site id';
$string['siteid_desc'] = 'Names this Moodle in every event and routing key: 1 to 32 lower-case letters, digits and hyphens, no dots. It must match the relay worker\'s configuration. Until it is set, no event is recorded.';
$string['snapshotfields'] = 'User fields in snapshots';
$string['snapshotfields_desc'] = 'Personal fields that user events may carry. The user id is always sent; passwords never.';
$string['taskdrain'] = 'Publish the event relay outbox';
$string['taskdrainfallback'] = 'Publish the event relay outbox (every-minute fallback)';
$string['user'] = 'User';
$string['user_desc'] = 'Broker user name.';
$string['usetls'] = 'Use TLS';
$string['usetls_desc'] = 'Connect with TLS, verifying the broker\'s certificate and host name.';
$string['vhost'] = 'Virtual host';
$string['vhost_desc'] = 'RabbitMQ virtual host.';
