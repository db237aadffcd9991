/*
 * -device text (DRIVER,key=value,... or QEMU's JSON object) into a
 * DeviceSpec: driver, id and the other properties in order. What a
 * property means is the device type's business (hw/).
 */
#include <string.h>
#include "device-spec.h"
#include "opts.h"
#include "json-streamer.h"

static void prop_free(gpointer p)
{
    DeviceProp *prop = p;

    g_free(prop->name);
    g_free(prop->value);
    g_free(prop);
}

static void prop_set(DeviceSpec *spec, const char *name, const char *value)
{
    for (guint i = 0; i < spec->props->len; i++) {
        DeviceProp *prop = spec->props->pdata[i];
        if (!strcmp(prop->name, name)) {
            g_free(prop->value);
            prop->value = g_strdup(value);
            return;
        }
    }
    DeviceProp *prop = g_new0(DeviceProp, 1);
    prop->name = g_strdup(name);
    prop->value = g_strdup(value);
    g_ptr_array_add(spec->props, prop);
}

/* QEMU 7.2's JSON form, as libvirt writes it: {"driver": "isa-serial",
 * "chardev": "c", "index": 0}. Numbers become their decimal text, booleans
 * on/off, as the key=value form would give them. */
static bool device_spec_parse_json(const char *text, DeviceSpec *out, Error **errp)
{
    json_object *obj = json_parse_qmp(text, errp);

    if (!obj) {
        return false;
    }
    if (!json_object_is_type(obj, json_type_object)) {
        error_setg(errp, "-device JSON: an object expected");
        json_object_put(obj);
        return false;
    }
    json_object_object_foreach(obj, name, val) {
        enum json_type t = json_object_get_type(val);
        const char *value = t == json_type_boolean ? (json_object_get_boolean(val) ? "on" : "off")
                                                   : json_object_get_string(val);
        if (t == json_type_object || t == json_type_array || t == json_type_null) {
            error_setg(errp, "Parameter '%s' expects a string, number or boolean", name);
            json_object_put(obj);
            return false;
        }
        if ((!strcmp(name, "driver") || !strcmp(name, "id")) && t != json_type_string) {
            error_setg(errp, "Invalid parameter type for '%s', expected: string", name);
            json_object_put(obj);
            return false;
        }
        if (!strcmp(name, "driver")) {
            out->driver = g_strdup(value);
        } else if (!strcmp(name, "id")) {
            out->id = g_strdup(value);
        } else {
            prop_set(out, name, value);
        }
    }
    json_object_put(obj);
    return true;
}

bool device_spec_parse(const char *text, DeviceSpec *out, Error **errp)
{
    bool json = text[0] == '{';
    g_autoptr(GPtrArray) items = json ? g_ptr_array_new() : split_opts(text);

    *out = (DeviceSpec) { .props = g_ptr_array_new_with_free_func(prop_free), .text = g_strdup(text) };
    if (json && !device_spec_parse_json(text, out, errp)) {
        device_spec_clear(out);
        return false;
    }
    for (guint i = 0; i < items->len; i++) {
        const char *item = items->pdata[i], *eq = strchr(item, '=');
        if (!eq && i == 0) {
            out->driver = g_strdup(item);
            continue;
        }
        if (!eq) {
            if (!*item && i == items->len - 1) {
                continue;               /* a trailing comma */
            }
            /* QemuOpts: a bare name is name=on. */
            prop_set(out, item, "on");
            continue;
        }
        g_autofree char *name = g_strndup(item, eq - item);
        if (!strcmp(name, "driver")) {
            g_free(out->driver);
            out->driver = g_strdup(eq + 1);
        } else if (!strcmp(name, "id")) {
            g_free(out->id);
            out->id = g_strdup(eq + 1);
        } else {
            prop_set(out, name, eq + 1);
        }
    }
    if (!out->driver || !*out->driver) {
        error_setg(errp, "Parameter 'driver' is missing");
        device_spec_clear(out);
        return false;
    }
    if (out->id && !g_ascii_isalpha(out->id[0])) {
        error_setg(errp, "Parameter 'id' expects an identifier\n"
                         "Identifiers consist of letters, digits, '-', '.', '_', starting with a letter.");
        device_spec_clear(out);
        return false;
    }
    return true;
}

void device_spec_clear(DeviceSpec *spec)
{
    g_free(spec->driver);
    g_free(spec->id);
    g_free(spec->text);
    if (spec->props) {
        g_ptr_array_free(spec->props, TRUE);
    }
    *spec = (DeviceSpec) { 0 };
}

const char *device_spec_get(DeviceSpec *spec, const char *name)
{
    for (guint i = 0; i < spec->props->len; i++) {
        DeviceProp *prop = spec->props->pdata[i];
        if (!strcmp(prop->name, name)) {
            prop->used = true;
            return prop->value;
        }
    }
    return NULL;
}

bool device_spec_check_unused(const DeviceSpec *spec, Error **errp)
{
    for (guint i = 0; i < spec->props->len; i++) {
        const DeviceProp *prop = spec->props->pdata[i];
        if (!prop->used) {
            error_setg(errp, "Property '%s.%s' not found", spec->driver, prop->name);
            return false;
        }
    }
    return true;
}
