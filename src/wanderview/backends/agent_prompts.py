"""Every text DreamJourney's vision-language agent sends, in one place (the paper's appendix).

Placeholders in braces are filled by ``backends/agent.py``; nothing else edits these texts.
"""

# --- dynamic-entity imagination (used for the inpainting prompt of Stage I and the list of Stage II)
IDENTIFY_ENTITIES = (
    "List the main entities (objects, creatures, natural elements) you can see in this image. "
    "Answer with a comma-separated list only."
)

IMAGINE_ENTITIES = (
    "You are an intelligent scene generator. Imagine you are flying through a scene, based on the entities "
    "in the current scene, you need to imagine possible entities with common and significant visible motion "
    "in the scene. You need to generate a suitable scene name and description for the {count} main entities "
    "in the scene. The entities within the scenes are adapted to match and fit with the scenes, and you "
    "should put entities with larger visual significance and motion possibility first.\n"
    "Entities in the current scene: {current}\n"
    "Answer in one line, in the form: Scene Name: entity 1, entity 2, ..."
)

# --- the three-step chain of thought that writes Stage II's motion prompt
CHAIN_IDENTIFY = (
    "First stage (identify): You should check the objects in the list of possible dynamic objects one by one "
    "to verify if they exist in the given image. If there is no object in the list identified in the given "
    "image, then you need to identify some by yourself.\n"
    "List of possible dynamic objects: {entities}"
)

CHAIN_DESCRIBE = (
    "Second stage (describe): For each identified object, provide a concise description of the Visual "
    "Significance (i.e. the proportion in given image), Motion Possibility (i.e. possibility of containing "
    "strong motion in the next few seconds), and what motion it/they may have in the image.\n"
    "Objects identified in the first stage: {identified}"
)

CHAIN_WRITE = (
    "Third stage (write prompt): Based on the descriptions from the previous stage, write the final "
    "dynamical description for the scene, first describe those objects with strong visual significance and "
    "motion possibility.\n"
    "Descriptions from the second stage: {described}\n"
    "Answer with the dynamical description only, in one to three short sentences."
)

# --- fixed texts
TRANSITION_PROMPT = "a camera flyover, cruising steadily across the scene"
"""Stage I's prompt to the video model (the paper's)."""

DEFAULT_DYNAMICS_PROMPT = "The video is of high quality, high dynamic, and the view is very clear."
"""Stage II's prompt without a usable agent answer (the paper's default guidance)."""

DEFAULT_INPAINT_PROMPT = "a continuation of the scene"
"""Stage I's inpainting prompt when neither the agent nor --entities names anything."""
